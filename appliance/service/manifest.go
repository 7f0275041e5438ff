package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	kjson "sigs.k8s.io/json"

	"github.com/xdpsvc/lb/appliance/config"
)

// Kinds of manifest the model understands.
const (
	KindService       = "Service"
	KindEndpointSlice = "EndpointSlice"
	KindEndpoints     = "Endpoints"
)

// Object is one decoded Kubernetes manifest document. Exactly one of Service, EndpointSlice and
// Endpoints is set. Objects are read-only once built.
type Object struct {
	// File is the path of the file the document came from.
	File string
	// Line is the first line of the document in File.
	Line int
	// Kind is KindService, KindEndpointSlice or KindEndpoints.
	Kind string
	// Service is set when Kind is KindService.
	Service *corev1.Service
	// EndpointSlice is set when Kind is KindEndpointSlice.
	EndpointSlice *discoveryv1.EndpointSlice
	// Endpoints is set when Kind is KindEndpoints.
	Endpoints *corev1.Endpoints
	// Hash is a content hash of the document (0 = unknown); Build reuses work for unchanged hashes.
	Hash uint64
	// lines maps field paths ("spec.ports[0].nodePort") to their lines.
	lines map[string]int
}

// NewObject wraps an object built in code (a *corev1.Service, *discoveryv1.EndpointSlice or
// *corev1.Endpoints) with its content hash; file and line name it in errors.
func NewObject(obj any, file string, line int) (Object, error) {
	o := Object{File: file, Line: line}
	switch v := obj.(type) {
	case *corev1.Service:
		o.Kind, o.Service = KindService, v
	case *discoveryv1.EndpointSlice:
		o.Kind, o.EndpointSlice = KindEndpointSlice, v
	case *corev1.Endpoints:
		o.Kind, o.Endpoints = KindEndpoints, v
	default:
		return o, fmt.Errorf("new object %s:%d: unsupported type %T", file, line, obj)
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return o, fmt.Errorf("new object %s:%d: %w", file, line, err)
	}
	h := fnv.New64a()
	h.Write([]byte(o.Kind))
	h.Write(data)
	o.Hash = h.Sum64()
	return o, nil
}

// LineOf returns the line of a field path, falling back to its closest parent that has one and
// finally to the document's first line.
func (o *Object) LineOf(field string) int {
	for f := field; f != ""; f = parentPath(f) {
		if l, ok := o.lines[f]; ok {
			return l
		}
	}
	return o.Line
}

func parentPath(f string) string {
	i := strings.LastIndexAny(f, ".[")
	if i < 0 {
		return ""
	}
	return f[:i]
}

// Name returns namespace/name of the object (namespace defaulted to "default").
func (o *Object) Name() string {
	switch {
	case o.Service != nil:
		return nsName(o.Service.Namespace, o.Service.Name)
	case o.EndpointSlice != nil:
		return nsName(o.EndpointSlice.Namespace, o.EndpointSlice.Name)
	case o.Endpoints != nil:
		return nsName(o.Endpoints.Namespace, o.Endpoints.Name)
	}
	return ""
}

func nsName(ns, name string) string {
	if ns == "" {
		ns = "default"
	}
	return ns + "/" + name
}

// LoadManifests reads files and folders (the *.yaml, *.yml and *.json files directly in a folder,
// in name order) of Kubernetes manifests. Every problem found, in every file, is returned together
// as a config.ErrorList; each names the file and line of the document and field.
func LoadManifests(paths []string) ([]Object, error) {
	var objs []Object
	var errs config.ErrorList
	for _, p := range paths {
		files := []string{p}
		if fi, err := os.Stat(p); err != nil {
			errs = append(errs, &config.FieldError{File: p, Message: fmt.Sprintf("load manifests %s: %v", p, err)})
			continue
		} else if fi.IsDir() {
			entries, err := os.ReadDir(p)
			if err != nil {
				errs = append(errs, &config.FieldError{File: p, Message: fmt.Sprintf("load manifests %s: %v", p, err)})
				continue
			}
			files = files[:0]
			for _, e := range entries {
				ext := filepath.Ext(e.Name())
				if !e.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
					files = append(files, filepath.Join(p, e.Name()))
				}
			}
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, &config.FieldError{File: f, Message: fmt.Sprintf("load manifests %s: %v", f, err)})
				continue
			}
			o, err := ParseManifests(data, f)
			objs = append(objs, o...)
			var el config.ErrorList
			if errors.As(err, &el) {
				errs = append(errs, el...)
			}
		}
	}
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}
	return objs, nil
}

// maxManifestBytes bounds one manifest file.
const maxManifestBytes = 64 << 20

// ParseManifests decodes the YAML (or JSON) documents of one file. It returns the objects it could
// decode and a config.ErrorList of every problem (nil when none).
func ParseManifests(data []byte, file string) ([]Object, error) {
	var errs config.ErrorList
	if len(data) > maxManifestBytes {
		errs = append(errs, &config.FieldError{File: file, Message: fmt.Sprintf("file larger than %d bytes", maxManifestBytes)})
		return nil, errs
	}
	var objs []Object
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, &config.FieldError{File: file, Line: config.YAMLErrorLine(err), Message: err.Error()})
			break // the decoder cannot resynchronise after a syntax error
		}
		root := &doc
		if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
			root = root.Content[0]
		}
		if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" || root.Kind == yaml.DocumentNode {
			continue // an empty document between two "---"
		}
		o, el := decodeDocument(root, file, len(data))
		if len(el) > 0 {
			errs = append(errs, el...)
			continue
		}
		objs = append(objs, o)
	}
	if len(errs) > 0 {
		errs.Sort()
		return objs, errs
	}
	return objs, nil
}

var supportedKinds = []string{KindEndpointSlice, KindEndpoints, KindService}

func decodeDocument(root *yaml.Node, file string, size int) (Object, config.ErrorList) {
	o := Object{File: file, Line: root.Line, lines: map[string]int{}}
	fe := func(line int, field, format string, args ...any) config.ErrorList {
		return config.ErrorList{{File: file, Line: line, Field: field, Message: fmt.Sprintf(format, args...)}}
	}
	if root.Kind != yaml.MappingNode {
		return o, fe(root.Line, "", "a manifest document must be a mapping")
	}
	c := converter{lines: o.lines, budget: 10000 + 64*size}
	var buf bytes.Buffer
	if err := c.write(&buf, root, "", 0); err != nil {
		return o, fe(err.line, err.field, "%s", err.msg)
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	_ = json.Unmarshal(buf.Bytes(), &head) // types checked by the strict decode below
	wantAPI := "v1"
	var target any
	switch head.Kind {
	case KindService:
		o.Service = &corev1.Service{}
		target = o.Service
	case KindEndpoints:
		o.Endpoints = &corev1.Endpoints{}
		target = o.Endpoints
	case KindEndpointSlice:
		wantAPI = "discovery.k8s.io/v1"
		o.EndpointSlice = &discoveryv1.EndpointSlice{}
		target = o.EndpointSlice
	case "":
		return o, fe(o.LineOf("kind"), "kind", "Required value: kind not set in the document")
	default:
		return o, fe(o.LineOf("kind"), "kind", "Unsupported value: %q: supported values: %q, %q, %q",
			head.Kind, supportedKinds[0], supportedKinds[1], supportedKinds[2])
	}
	o.Kind = head.Kind
	if head.APIVersion != wantAPI {
		return o, fe(o.LineOf("apiVersion"), "apiVersion", "Unsupported value: %q: supported values: %q (kind %s)", head.APIVersion, wantAPI, head.Kind)
	}
	strict, err := kjson.UnmarshalStrict(buf.Bytes(), target, kjson.DisallowUnknownFields, kjson.DisallowDuplicateFields)
	if err != nil {
		field := jsonErrorField(err.Error())
		return o, fe(o.LineOf(field), field, "%v", err)
	}
	var el config.ErrorList
	for _, s := range strict {
		field := strictErrorField(s.Error())
		el = append(el, &config.FieldError{File: file, Line: o.LineOf(field), Field: field, Message: "strict decoding error: " + s.Error()})
	}
	if len(el) > 0 {
		return o, el
	}
	h := fnv.New64a()
	h.Write([]byte(o.Kind))
	h.Write(buf.Bytes())
	o.Hash = h.Sum64()
	return o, nil
}

var (
	reStrictField = regexp.MustCompile(`(?:unknown|duplicate) field "([^"]*)"`)
	reJSONField   = regexp.MustCompile(`Go struct field [A-Za-z0-9_]+\.([^ ]+) of type`)
)

func strictErrorField(msg string) string {
	if m := reStrictField.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return ""
}

func jsonErrorField(msg string) string {
	if m := reJSONField.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return ""
}

// converter turns a yaml.v3 node tree into JSON while recording the line of every field path.
// Alias expansion is bounded by budget (nodes written) so that "billion laughs" inputs fail cleanly.
type converter struct {
	lines  map[string]int
	budget int
}

type convertError struct {
	line  int
	field string
	msg   string
}

const maxDepth = 64

var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c *converter) write(buf *bytes.Buffer, n *yaml.Node, path string, depth int) *convertError {
	c.budget--
	if c.budget < 0 {
		return &convertError{n.Line, path, "document too large after alias expansion"}
	}
	if depth > maxDepth {
		return &convertError{n.Line, path, fmt.Sprintf("nested deeper than %d levels", maxDepth)}
	}
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias == nil {
			return &convertError{n.Line, path, "unknown alias"}
		}
		return c.write(buf, n.Alias, path, depth+1)
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return &convertError{n.Line, path, "empty document"}
		}
		return c.write(buf, n.Content[0], path, depth+1)
	case yaml.MappingNode:
		buf.WriteByte('{')
		seen := make(map[string]struct{}, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!null" {
				return &convertError{k.Line, path, "mapping keys must be strings"}
			}
			if k.ShortTag() == "!!merge" {
				return &convertError{k.Line, path, "merge keys (<<) are not supported"}
			}
			if _, dup := seen[k.Value]; dup {
				return &convertError{k.Line, join(path, k.Value), fmt.Sprintf("duplicate field %q", k.Value)}
			}
			seen[k.Value] = struct{}{}
			if i > 0 {
				buf.WriteByte(',')
			}
			kb, _ := json.Marshal(k.Value)
			buf.Write(kb)
			buf.WriteByte(':')
			p := join(path, k.Value)
			if path != "" && !plainKey.MatchString(k.Value) {
				p = path + "[" + k.Value + "]"
			}
			if _, ok := c.lines[p]; !ok {
				c.lines[p] = v.Line
			}
			if err := c.write(buf, v, p, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, v := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			p := path + "[" + strconv.Itoa(i) + "]"
			if _, ok := c.lines[p]; !ok {
				c.lines[p] = v.Line
			}
			if err := c.write(buf, v, p, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case yaml.ScalarNode:
		return c.scalar(buf, n, path)
	default:
		return &convertError{n.Line, path, "unsupported YAML node"}
	}
	return nil
}

func (c *converter) scalar(buf *bytes.Buffer, n *yaml.Node, path string) *convertError {
	var v any
	switch n.ShortTag() {
	case "!!str", "!!binary":
		v = n.Value
	case "!!null":
		buf.WriteString("null")
		return nil
	default:
		if err := n.Decode(&v); err != nil {
			return &convertError{n.Line, path, err.Error()}
		}
	}
	switch x := v.(type) {
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return &convertError{n.Line, path, fmt.Sprintf("invalid number %q", n.Value)}
		}
	case time.Time:
		v = x.UTC().Format(time.RFC3339)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return &convertError{n.Line, path, err.Error()}
	}
	buf.Write(b)
	return nil
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// sortObjects orders objects by kind, then namespace/name, so later passes are independent of file order.
func sortObjects(objs []*Object) {
	slices.SortFunc(objs, func(a, b *Object) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		ans, an := a.meta()
		bns, bn := b.meta()
		if c := strings.Compare(ans, bns); c != 0 {
			return c
		}
		return strings.Compare(an, bn)
	})
}

// meta returns the defaulted namespace and the name without allocating.
func (o *Object) meta() (string, string) {
	var ns, name string
	switch {
	case o.Service != nil:
		ns, name = o.Service.Namespace, o.Service.Name
	case o.EndpointSlice != nil:
		ns, name = o.EndpointSlice.Namespace, o.EndpointSlice.Name
	case o.Endpoints != nil:
		ns, name = o.Endpoints.Namespace, o.Endpoints.Name
	}
	if ns == "" {
		ns = "default"
	}
	return ns, name
}
