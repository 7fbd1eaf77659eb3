package config

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every *ErrorList, so errors.Is(err,
// config.ErrInvalid) tells a bad file from a missing one.
var ErrInvalid = errors.New("invalid configuration")

// Error is one problem at one place in a file.
type Error struct {
	File      string
	Line, Col int // 1-based; 0 when unknown
	Msg       string
	Err       error // the underlying error, if any (a *verdict.CompileError, say)
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

func (e *Error) Error() string {
	switch {
	case e.Line == 0:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	case e.Col == 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// ErrorList is every problem found in a file, in file order.
type ErrorList struct {
	Errs []*Error
}

// Error lists the problems, one a line.
func (l *ErrorList) Error() string {
	s := make([]string, len(l.Errs))
	for i, e := range l.Errs {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap returns the problems and ErrInvalid, for errors.Is and errors.As.
func (l *ErrorList) Unwrap() []error {
	out := make([]error, 0, len(l.Errs)+1)
	out = append(out, ErrInvalid)
	for _, e := range l.Errs {
		out = append(out, e)
	}
	return out
}
