package outputs

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	v := map[string]int{"kills": 10}
	if err := Write(dir, v, "r.json", "r.md", func(w io.Writer) error { _, err := io.WriteString(w, "| a |\n"); return err }); err != nil {
		t.Fatal(err)
	}
	var got map[string]int
	b, err := os.ReadFile(filepath.Join(dir, "r.json"))
	if err != nil || json.Unmarshal(b, &got) != nil || got["kills"] != 10 {
		t.Fatalf("r.json %q, %v", b, err)
	}
	if md, err := os.ReadFile(filepath.Join(dir, "r.md")); err != nil || string(md) != "| a |\n" {
		t.Fatalf("r.md %q, %v", md, err)
	}
	boom := errors.New("boom")
	if err := Write(dir, v, "r.json", "r.md", func(io.Writer) error { return boom }); !errors.Is(err, boom) || !strings.Contains(err.Error(), "r.md") {
		t.Fatalf("markdown error: %v", err)
	}
	if err := Write(dir, func() {}, "r.json", "r.md", nil); err == nil {
		t.Fatal("a value JSON cannot encode was accepted")
	}
}
