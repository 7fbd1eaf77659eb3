package ruletest

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadFile is wrapped by every error about the content of a test file.
var ErrBadFile = errors.New("bad test file")

// PosError is a problem at a position in a test file.
type PosError struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *PosError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Unwrap makes errors.Is(err, ErrBadFile) true.
func (e *PosError) Unwrap() error { return ErrBadFile }

// FileErrors is every problem found in one file, in file order.
type FileErrors []*PosError

func (l FileErrors) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap makes errors.Is(err, ErrBadFile) and errors.As(err, **PosError)
// work on the list.
func (l FileErrors) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}
