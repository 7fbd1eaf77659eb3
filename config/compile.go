package config

import (
	"errors"

	"github.com/qguard/qguard/verdict"
)

// Compile compiles f.Policy (see verdict.CompileWith; o may be nil) and
// reports its errors at the rules' places in the file, as an *ErrorList.
func (f *File) Compile(o *verdict.CompileOptions) (*verdict.Compiled, error) {
	c, err := verdict.CompileWith(&f.Policy, o)
	if err == nil {
		return c, nil
	}
	l := &ErrorList{}
	var joined interface{ Unwrap() []error }
	errs := []error{err}
	if errors.As(err, &joined) {
		errs = joined.Unwrap()
	}
	for _, e := range errs {
		var ce *verdict.CompileError
		p := pos{}
		if errors.As(e, &ce) && ce.Rule >= 0 && ce.Rule < len(f.rulePos) {
			p = f.rulePos[ce.Rule].key(fieldKey(ce.Field))
		}
		l.Errs = append(l.Errs, &Error{File: f.Name, Line: p.line, Col: p.col, Msg: e.Error(), Err: e})
	}
	return nil, l
}

// fieldKey maps a CompileError field to the file key it came from.
func fieldKey(field string) string {
	if field == "port" {
		return "dport"
	}
	return field
}
