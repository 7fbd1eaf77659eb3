package engine

import (
	"errors"
	"fmt"
	"slices"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/names"
	"github.com/qguard/qguard/rules"
	"github.com/qguard/qguard/verdict"
)

// Check reports what New refuses in cfg before it touches the kernel: the
// settings New builds with o's overrides (nil: none, as `qguard check`
// runs it), each owning package's validation of its part, and the policy
// compiled. New and every reload run the same steps, so `qguard check`
// and `qguard run` cannot disagree about a file. The problems come back in
// one *config.ErrorList, each at its place in the file.
func Check(cfg *config.File, o *Options) error {
	var opts Options
	if o != nil {
		opts = *o
	}
	set, err := newSettings(cfg, &opts)
	if err != nil {
		return err // an override, not the file
	}
	var list config.ErrorList
	appendErrors(&list, set.validate(cfg))
	appendErrors(&list, checkCompile(set))
	if len(list.Errs) == 0 {
		return nil
	}
	slices.SortStableFunc(list.Errs, func(a, b *config.Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	})
	return &list
}

// CheckFile is Check of the file at path with no overrides: `qguard check
// FILE`.
func CheckFile(path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	return Check(cfg, nil)
}

// checkedSettings is newSettings followed by every owner's validation of
// the settings (validate): what New, Reload and Check build from a file.
func checkedSettings(cfg *config.File, o *Options) (*settings, error) {
	set, err := newSettings(cfg, o)
	if err != nil {
		return nil, err
	}
	if err := set.validate(cfg); err != nil {
		return nil, fmt.Errorf("check configuration: %w: %w", ErrConfig, err)
	}
	return set, nil
}

// validate runs each owning package's check of its settings, the one it
// makes again when the kernel is touched (queue.Open, rules.New,
// xdp.Attach, names.New), and the flow tables' memory (flowmem_linux.go),
// each error at its section in the file. The rules and XDP sections are
// checked whether or not the options install or attach them: the file is
// what is checked.
func (s *settings) validate(cfg *config.File) error {
	var list config.ErrorList
	add := func(key string, err error) {
		if err != nil {
			list.Errs = append(list.Errs, cfg.ErrorAt(key, err).Errs...)
		}
	}
	add("queue", s.queue.Validate())
	if cfg.Rules.Install {
		err := s.rules.Validate()
		key := "rules"
		if fe := (*rules.FieldError)(nil); errors.As(err, &fe) {
			key += "." + fe.Field // the key it names: rules.marks.reject
		}
		add(key, err)
	}
	if len(cfg.XDP.Interfaces) > 0 {
		add("xdp", cfg.XDP.Validate())
	}
	add("names", s.names.Validate())
	add("flows", checkFlowMemory(s))
	if len(list.Errs) == 0 {
		return nil
	}
	return &list
}

// checkCompile compiles the policy as New does, against a names table of
// its own and the system's interfaces.
func checkCompile(set *settings) error {
	var c names.Config
	if set.names != nil {
		c = *set.names
	}
	t, err := names.New(&c)
	if err != nil {
		return nil // validate reported it
	}
	_, err = set.compiled(&verdict.CompileOptions{Names: t, NamePorts: set.namePorts})
	return err
}

// appendErrors adds err's problems to l: those of an *config.ErrorList, or
// err itself at no place.
func appendErrors(l *config.ErrorList, err error) {
	var el *config.ErrorList
	switch {
	case err == nil:
	case errors.As(err, &el):
		l.Errs = append(l.Errs, el.Errs...)
	default:
		l.Errs = append(l.Errs, &config.Error{Msg: err.Error(), Err: err})
	}
}
