// Package outputs writes the result files the bench commands share: an indented JSON file with
// every raw figure and a markdown summary, into one folder, and the PNG plots each command draws (Plot);
// it also describes the machine a result came from (Machine, Provenance).
//
// Concurrency: every function may be called from any goroutine; Write and the plots touch only their
// output files, so two writers must not share a folder.
package outputs

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write creates dir if needed and writes v as indented JSON to dir/jsonName, through markdown
// dir/mdName, and the plots. It returns the first error, naming the file.
func Write(dir string, v any, jsonName, mdName string, markdown func(io.Writer) error, plots ...Plot) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write outputs %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, jsonName), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write outputs %s: %w", dir, err)
	}
	path := filepath.Join(dir, mdName)
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write outputs %s: %w", dir, err)
	}
	if err := markdown(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return draw(dir, plots)
}

// ReadJSON reads a results file Write wrote.
func ReadJSON[T any](path string) (*T, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read results %s: %w", path, err)
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("read results %s: %w", path, err)
	}
	return &v, nil
}
