package config

import (
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// TestWalkerRecordsLines proves that the walker records the line of every mapping value and every
// sequence item under its field path, which is what errors found after the walk are located by.
func TestWalkerRecordsLines(t *testing.T) {
	const doc = `a:
  b:
  - x
  - c: [1,
      2]
  - - y
`
	w := newWalker("f.yaml")
	root := w.document([]byte(doc))
	if root == nil {
		t.Fatalf("document: %v", w.errs)
	}
	var item itemHandler
	item = func(_ int, n *yaml.Node, f string) {
		switch n.Kind {
		case yaml.MappingNode:
			w.mapping(n, f, map[string]handler{"c": func(n *yaml.Node, f string) { w.seq(n, f, item) }})
		case yaml.SequenceNode:
			w.seq(n, f, item)
		}
	}
	w.mapping(root, "", map[string]handler{
		"a": func(n *yaml.Node, f string) {
			w.mapping(n, f, map[string]handler{"b": func(n *yaml.Node, f string) { w.seq(n, f, item) }})
		},
	})
	if len(w.errs) > 0 {
		t.Fatalf("errors: %v", w.errs)
	}
	want := map[string]int{"a": 2, "a.b": 3, "a.b[0]": 3, "a.b[1]": 4, "a.b[1].c": 4, "a.b[1].c[0]": 4,
		"a.b[1].c[1]": 5, "a.b[2]": 6, "a.b[2][0]": 6}
	for f, line := range want {
		if got, ok := w.lines[f]; !ok || got != line {
			t.Errorf("line of %s: %d (recorded %v), want %d", f, got, ok, line)
		}
	}
	if len(w.lines) != len(want) {
		t.Errorf("recorded %v, want exactly %v", w.lines, want)
	}
}
