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

// ErrorAt returns err as an *ErrorList of one *Error at the place of key,
// a dotted path like "rules" or "queue.verdict_mode": the nearest enclosing
// key the file wrote, the file itself when it wrote none; the message
// starts with key. The packages that
// own the settings validate them; this puts their errors in the file.
func (f *File) ErrorAt(key string, err error) *ErrorList {
	p := pos{}
	for k := key; k != ""; k = k[:max(strings.LastIndexByte(k, '.'), 0)] {
		if kp, ok := f.keys[k]; ok {
			p = kp
			break
		}
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, key+": ") {
		msg = key + ": " + msg
	}
	return &ErrorList{Errs: []*Error{{File: f.Name, Line: p.line, Col: p.col, Msg: msg, Err: err}}}
}
