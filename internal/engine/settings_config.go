package engine

import (
	"fmt"
	"slices"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/rules"
)

// newSettings turns a parsed configuration file into the packages' own
// configurations and applies the Options overrides. The file was validated
// by config.Parse; what is checked here is what only the combination with
// the overrides can get wrong.
func newSettings(cfg *config.File, o *Options) (*settings, error) {
	s := &settings{
		queue:        cfg.Queue,
		installRules: cfg.Rules.Install && !o.NoRules && !o.Offline,
		guardRules:   cfg.Rules.Guard,
		policy:       &cfg.Policy,
		pipeline:     cfg.PipelineOptions(),
		record:       cfg.Record,
		compile:      cfg.Compile,
		names:        namesConfig(cfg),
		namePorts:    cfg.Names.Ports,
	}
	if o.Queue != nil {
		if o.Queue.Count == 0 || int(o.Queue.Num)+int(o.Queue.Count) > 1<<16 {
			return nil, fmt.Errorf("queue override %d:%d: %w", o.Queue.Num, o.Queue.Count, ErrConfig)
		}
		s.queue.Num, s.queue.Count = o.Queue.Num, o.Queue.Count
	}
	if s.queue.Count == 0 {
		s.queue.Count = 1
	}
	s.rules = rulesConfig(&cfg.Rules, s.queue.Num, s.queue.Count)
	setMode(s.rules, cfg)
	s.rules.NetNS = o.NetNS
	s.marks = s.rules.Marks
	if s.marks.Mask == 0 {
		s.marks = rules.DefaultMarks
	}
	if len(cfg.XDP.Interfaces) > 0 && !o.NoXDP && !o.Offline {
		x := cfg.XDP
		x.Interfaces = slices.Clone(x.Interfaces)
		s.xdp = &x
	}
	return s, nil
}

// RulesConfig is the rules package's Config for a configuration file: the
// table `qguard run` installs, also what `qguard rules apply` installs.
func RulesConfig(f *config.File) *rules.Config {
	c := rulesConfig(&f.Rules, f.Queue.Num, f.Queue.Count)
	setMode(c, f)
	return c
}

// setMode puts the file's rules.mode into c: with kernel-first, the policy
// the kernel runs. An empty mode (a File not from Parse) is queue-all.
func setMode(c *rules.Config, f *config.File) {
	if f.Rules.Mode == rules.KernelFirst {
		c.Mode, c.Policy = rules.KernelFirst, kernelPolicy(&f.Policy, kernelOptsOf(f))
	}
	// ct matchers read the queue's conntrack metadata and flow records
	// conntrack's destroy events: both need tracking on. record.flows
	// (default true) records nothing without record.output.
	c.Conntrack = f.Queue.Flags&queue.FlagConntrack != 0 || f.Record.Flows && f.Record.Output != ""
	if usesNames(&f.Policy) {
		c.NamePorts = f.Names.Ports // the answers must reach the queue
	}
}

// rulesConfig is the file's table, steering to queues num..num+count-1.
func rulesConfig(r *config.Rules, num, count uint16) *rules.Config {
	c := r.Config
	c.QueueNum, c.QueueCount = num, count
	return &c
}
