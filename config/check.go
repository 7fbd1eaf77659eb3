package config

import (
	"errors"

	"github.com/qguard/qguard/verdict"
)

// Check loads the file at path and compiles its policy, as `qguard check`
// does. Interface names are resolved in the calling network namespace. All
// problems come back in one *ErrorList.
func Check(path string) error {
	f, err := Load(path)
	if err != nil {
		return err
	}
	_, err = f.Compile(nil)
	if rerr := f.checkRules(); rerr != nil {
		l, _ := err.(*ErrorList)
		if l == nil {
			l = &ErrorList{}
		}
		l.Errs = append(l.Errs, rerr)
		err = l
	}
	return err
}

// checkRules validates the rules section with the rules package's own
// check, the one rules.New (qguard run, qguard rules apply) applies, so
// check and run cannot disagree about it.
func (f *File) checkRules() *Error {
	err := f.Rules.Config(f.Queue.Num, f.Queue.Count).Validate()
	if err == nil {
		return nil
	}
	return &Error{File: f.Name, Line: f.rulesPos.line, Col: f.rulesPos.col, Msg: "rules: " + err.Error(), Err: err}
}

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
