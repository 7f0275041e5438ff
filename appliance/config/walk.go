package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// walker walks a yaml.v3 node tree strictly: unknown keys, duplicate keys and wrong node kinds are
// errors. It collects every error with its line, and records the line of every mapping value and
// every sequence item under its field path ("network.loadBalancerPools[1].cidrs[0]"), so that
// checks which run after the walk can name the field and its line.
//
// A walker knows nothing of the config's sections; the section parsers give it a handler per key.
type walker struct {
	file  string
	errs  ErrorList
	lines map[string]int // field path -> 1-based line of its value
}

// handler parses the value node n of the field at path field.
type handler func(n *yaml.Node, field string)

// itemHandler parses item i, node n, of a sequence; field is its path ("interfaces[2]").
type itemHandler func(i int, n *yaml.Node, field string)

func newWalker(file string) *walker {
	return &walker{file: file, lines: map[string]int{}}
}

// maxConfigBytes bounds the config file size; a config is a few hundred bytes.
const maxConfigBytes = 1 << 20

// document decodes data as exactly one YAML document and returns its top node, or nil when there is
// nothing to walk (the errors say why). A second document is an error, but the first is still walked.
func (w *walker) document(data []byte) *yaml.Node {
	if len(data) > maxConfigBytes {
		w.errf(0, "", "file larger than %d bytes", maxConfigBytes)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	switch {
	case errors.Is(err, io.EOF):
		w.errf(1, "", "empty config file")
		return nil
	case err != nil:
		w.yamlErr(err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		w.errf(extra.Line, "", "more than one YAML document in the config file")
	} else if !errors.Is(err, io.EOF) {
		w.yamlErr(err)
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0]
	}
	return &doc
}

func (w *walker) errf(line int, field, format string, args ...any) {
	w.errs = append(w.errs, &FieldError{File: w.file, Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
}

// hadErrorOn reports whether an error names field.
func (w *walker) hadErrorOn(field string) bool {
	for _, e := range w.errs {
		if e.Field == field {
			return true
		}
	}
	return false
}

// yamlErr turns a yaml.v3 syntax error into a FieldError with its line.
func (w *walker) yamlErr(err error) {
	w.errs = append(w.errs, &FieldError{File: w.file, Line: YAMLErrorLine(err), Message: err.Error()})
}

// YAMLErrorLine extracts the "line N" of a yaml.v3 error message, or 0.
func YAMLErrorLine(err error) int {
	msg := err.Error()
	i := strings.Index(msg, "line ")
	if i < 0 {
		return 0
	}
	j := i + 5
	for j < len(msg) && msg[j] >= '0' && msg[j] <= '9' {
		j++
	}
	n, _ := strconv.Atoi(msg[i+5 : j])
	return n
}

// mapping walks a mapping node, calling the handler of each key with the key's value and path.
// Unknown and duplicate keys are errors; a null node ("key:" with nothing) keeps the defaults.
func (w *walker) mapping(n *yaml.Node, field string, keys map[string]handler) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		w.errf(n.Line, field, "must be a mapping, not %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := join(field, k.Value)
		if k.Kind != yaml.ScalarNode {
			w.errf(k.Line, field, "keys must be strings")
			continue
		}
		if seen[k.Value] {
			w.errf(k.Line, f, "duplicate key")
			continue
		}
		seen[k.Value] = true
		fn, ok := keys[k.Value]
		if !ok {
			w.errf(k.Line, f, "unknown field")
			continue
		}
		w.lines[f] = v.Line
		fn(v, f)
	}
}

// seq walks a sequence node, calling fn for each item with its index and path ("field[i]"). A null
// node is an empty list.
func (w *walker) seq(n *yaml.Node, field string, fn itemHandler) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		w.errf(n.Line, field, "must be a list, not %s", kindName(n))
		return
	}
	for i, c := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		w.lines[f] = c.Line
		fn(i, c, f)
	}
}

// has reports whether the mapping node n has key.
func has(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// join appends key to the dotted path parent.
func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}
