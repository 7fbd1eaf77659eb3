package engine

import (
	"fmt"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/rules"
	"github.com/qguard/qguard/verdict"
	"github.com/qguard/qguard/xdp"
)

// newSettings turns a parsed configuration file into the packages' own
// configurations and applies the Options overrides. The file was validated
// by config.Parse; what is checked here is what only the combination with
// the overrides can get wrong.
func newSettings(cfg *config.File, o *Options) (*settings, error) {
	s := &settings{
		queue:        queueConfig(&cfg.Queue),
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
	if cfg.Queue.VerdictMode != "" {
		m, err := verdictMode(cfg.Queue.VerdictMode)
		if err != nil {
			return nil, err
		}
		s.queue.VerdictMode = m
	}
	s.rules = rulesConfig(&cfg.Rules, s.queue.Num, s.queue.Count)
	setMode(s.rules, cfg)
	s.rules.NetNS = o.NetNS
	s.marks = s.rules.Marks
	if s.marks.Mask == 0 {
		s.marks = rules.DefaultMarks
	}
	if len(cfg.XDP.Interfaces) > 0 && !o.NoXDP && !o.Offline {
		mode := xdp.ModeAuto
		if cfg.XDP.Mode != "" {
			m, err := xdp.ParseMode(cfg.XDP.Mode)
			if err != nil {
				return nil, fmt.Errorf("xdp.mode: %w: %w", ErrConfig, err)
			}
			mode = m
		}
		s.xdp = &xdp.Config{Interfaces: append([]string(nil), cfg.XDP.Interfaces...), Mode: mode}
	}
	return s, nil
}

func queueConfig(q *config.Queue) queue.Config {
	c := queue.Config{
		Num: q.Num, Count: q.Count, CopyMode: queue.CopyPacket, CopyRange: q.CopyRange,
		MaxLen: q.MaxLen, RcvBuf: q.RcvBuf, BatchSize: q.BatchSize, FlushInterval: q.FlushInterval,
		DefaultVerdict: queue.Accept,
	}
	if q.DefaultVerdict == verdict.ActionDrop {
		c.DefaultVerdict = queue.Drop
	}
	for _, f := range []struct {
		on   bool
		flag queue.Flags
	}{{q.FailOpen, queue.FlagFailOpen}, {q.GSO, queue.FlagGSO}, {q.UIDGID, queue.FlagUIDGID}, {q.Conntrack, queue.FlagConntrack}} {
		if f.on {
			c.Flags |= f.flag
		}
	}
	return c
}

func verdictMode(s string) (queue.VerdictMode, error) {
	switch s {
	case "batch":
		return queue.Batch, nil
	case "vectored":
		return queue.Vectored, nil
	case "per-packet":
		return queue.PerPacket, nil
	}
	return 0, fmt.Errorf("queue.verdict_mode %q (want batch, vectored or per-packet): %w", s, ErrConfig)
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
	if f.Rules.Mode == "kernel-first" {
		c.Mode, c.Policy = rules.KernelFirst, kernelPolicy(&f.Policy, kernelOptsOf(f))
	}
	// ct matchers read the queue's conntrack metadata and flow records
	// conntrack's destroy events: both need tracking on.
	c.Conntrack = f.Queue.Conntrack || f.Record.Flows
	if usesNames(&f.Policy) {
		c.NamePorts = f.Names.Ports // the answers must reach the queue
	}
}

func rulesConfig(r *config.Rules, num, count uint16) *rules.Config { return r.Config(num, count) }
