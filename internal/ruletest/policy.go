package ruletest

import (
	"errors"
	"fmt"
	"strings"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/verdict"
)

// topologyIfaces are the firewall namespace's interfaces, the only ones a
// tested policy's iif/oif can name: another name is a typo. The indexes
// are placeholders: the engine matches names inside the namespace.
var topologyIfaces = map[string]uint32{"lo": 1, "fw-c": 2, "fw-s": 3}

// loadConfig parses a file's configuration with the config package and
// compiles its policy, so that a bad policy fails before anything runs.
// Errors keep the test file's positions (see File.Config).
func loadConfig(f *File) (*config.File, error) {
	parse := config.Parse
	if f.inline {
		parse = func(name string, data []byte) (*config.File, error) {
			return config.ParseSections(name, data, configSections...)
		}
	}
	cfg, err := parse(f.ConfigName, f.Config)
	if err != nil {
		return nil, err
	}
	if f.Mode != "" {
		if err := cfg.Rules.Mode.UnmarshalText([]byte(f.Mode)); err != nil {
			return nil, fmt.Errorf("mode: %w", err)
		}
	}
	if !cfg.Rules.Install {
		return nil, fmt.Errorf("rules.install is false: the test needs qguard's own nftables rules to steer traffic to its queue")
	}
	if _, err := cfg.Compile(&verdict.CompileOptions{CheckIface: func(pattern string) error {
		for n := range topologyIfaces {
			if p, ok := strings.CutSuffix(pattern, "*"); ok && strings.HasPrefix(n, p) || n == pattern {
				return nil
			}
		}
		return errors.New("not in the test topology (the firewall has fw-c towards the client, fw-s towards the server, lo)")
	}}); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkPolicy validates the policy and every case's `rule:` against it.
func (p *parser) checkPolicy(f *File) {
	cfg, err := loadConfig(f)
	if err != nil {
		var l *config.ErrorList
		if errors.As(err, &l) {
			for _, e := range l.Errs {
				p.errs = append(p.errs, &PosError{File: e.File, Line: e.Line, Col: e.Col, Msg: "policy: " + e.Msg})
			}
			return
		}
		p.errs = append(p.errs, &PosError{File: f.ConfigName, Msg: "policy: " + err.Error()})
		return
	}
	names := map[string]bool{"default": true, "invalid": true, "undecided": true}
	for _, r := range cfg.Policy.Rules {
		names[r.Name] = true
	}
	for _, c := range f.Cases {
		if c.Rule != "" && !names[c.Rule] {
			p.errs = append(p.errs, &PosError{File: p.name, Line: c.RuleLine, Col: c.RuleCol,
				Msg: fmt.Sprintf("rule: the policy has no rule %q (write default for the policy's default action)", c.Rule)})
		}
	}
}
