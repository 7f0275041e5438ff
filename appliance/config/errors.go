package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// FieldError is one problem found in an input file, located by file, line and field path.
type FieldError struct {
	// File is the path of the file as the user gave it (or as resolved from the config's directory).
	File string
	// Line is the 1-based line of the field, or of its document when the field has no line; 0 = unknown.
	Line int
	// Field is the dotted field path ("network.serviceCIDR", "spec.ports[0].nodePort"); may be empty.
	Field string
	// Message says what is wrong, in kube-apiserver's wording where it has one.
	Message string
}

// Error formats the error as FILE:LINE: FIELD: MESSAGE, leaving out the parts that are unknown.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// ErrorList is every problem found in one load; it is an error when non-empty.
type ErrorList []*FieldError

// Error joins the errors, one per line.
func (l ErrorList) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Sort orders the errors by file, then line, then field, then message, so output is stable.
func (l ErrorList) Sort() {
	slices.SortStableFunc(l, func(a, b *FieldError) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Field, b.Field), cmp.Compare(a.Message, b.Message))
	})
}

// Err returns nil for an empty list and the list otherwise (avoids the typed-nil interface trap).
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}
