package engine

import (
	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/names"
	"github.com/qguard/qguard/proto"
	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/rules"
	"github.com/qguard/qguard/verdict"
	"github.com/qguard/qguard/xdp"
)

// settings is a configuration file turned into the packages' own configs,
// with the Options overrides applied.
type settings struct {
	queue        queue.Config
	installRules bool
	record       config.Record // record.output "": no record
	guardRules   bool          // rules.guard: re-install the table when changed
	rules        *rules.Config
	marks        rules.Marks
	xdp          *xdp.Config // nil: no XDP
	policy       *verdict.Policy
	pipeline     *verdict.Options
	names        *names.Config     // the names section (names.go)
	namePorts    []proto.PortRange // ports whose DNS feeds the names
	// compile compiles policy; config.File.Compile reports errors at their
	// place in the file.
	compile func(*verdict.CompileOptions) (*verdict.Compiled, error)
}

func (s *settings) compiled(o *verdict.CompileOptions) (*verdict.Compiled, error) {
	if s.compile != nil {
		return s.compile(o)
	}
	return verdict.CompileWith(s.policy, o)
}
