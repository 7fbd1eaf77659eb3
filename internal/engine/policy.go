package engine

import (
	"sync"

	"github.com/qguard/qguard/rules"

	"github.com/qguard/qguard/verdict"
)

// policyState is one generation of the policy: the compiled form the
// pipelines run and the hit counters of its rules, by index.
type policyState struct {
	policy   *verdict.Policy
	compiled *verdict.Compiled
	rules    []*ruleCounter
	// Counters for the special Decision.Rule values.
	def, invalid, pending, stage, undecided *ruleCounter
	// flowMarks: qguard's rules act on the flow marks (rules.offload).
	flowMarks bool
}

func (g *policyState) hit(d *verdict.Decision, q int) {
	if rc := g.counter(d); rc != nil {
		rc.perQueue[q].n.Add(1)
	}
}

// counter is the rule counter of d's rule, nil for none.
func (g *policyState) counter(d *verdict.Decision) *ruleCounter {
	var rc *ruleCounter
	switch r := d.Rule; {
	case r >= 0 && r < len(g.rules):
		rc = g.rules[r]
	case r == verdict.RuleDefault:
		rc = g.def
	case r == verdict.RuleInvalid:
		rc = g.invalid
	case r == verdict.RulePending:
		rc = g.pending
	case r == verdict.RuleStage:
		rc = g.stage
	case r == verdict.RuleUndecided:
		rc = g.undecided
	}
	return rc
}

// ruleRegistry keeps one counter per rule name for the engine's lifetime,
// so that a reload keeping a rule keeps its count.
type ruleRegistry struct {
	mu     sync.Mutex
	queues int
	byName map[string]*ruleCounter
}

// counter returns the counter of name, made (with no action) if missing.
func (r *ruleRegistry) counter(name string) *ruleCounter {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byName == nil {
		r.byName = map[string]*ruleCounter{}
	}
	rc := r.byName[name]
	if rc == nil {
		rc = newRuleCounter(name, "", r.queues)
		r.byName[name] = rc
	}
	return rc
}

func (r *ruleRegistry) get(name, action string) *ruleCounter {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byName == nil {
		r.byName = map[string]*ruleCounter{}
	}
	rc := r.byName[name]
	if rc == nil {
		rc = newRuleCounter(name, action, r.queues)
		r.byName[name] = rc
	}
	rc.action = action
	return rc
}

// Counter names for decisions that no named rule made: verdict's names
// (Compiled.RuleName), so counters, metrics, status and the record agree.
// A policy rule that happens to use one of these names shares its counter.
const (
	CounterDefault = verdict.RuleNameDefault
	CounterInvalid = verdict.RuleNameInvalid
	CounterPending = verdict.RuleNamePending
	CounterStage   = verdict.RuleNameStage
	// CounterUndecided counts decisions by policy.l7_undecided: L7 data a
	// rule needs that cannot be read (docs/inspection.md).
	CounterUndecided = verdict.RuleNameUndecided
)

func (e *Engine) newGeneration(p *verdict.Policy, c *verdict.Compiled) *policyState {
	g := &policyState{policy: p, compiled: c, rules: make([]*ruleCounter, len(p.Rules))}
	for i, r := range p.Rules {
		g.rules[i] = e.reg.get(r.Name, r.Action.String())
	}
	g.def = e.reg.get(CounterDefault, p.Default.String())
	g.invalid = e.reg.get(CounterInvalid, c.InvalidAction().String())
	g.pending = e.reg.get(CounterPending, verdict.ActionAccept.String())
	g.stage = e.reg.get(CounterStage, "")
	g.undecided = e.reg.get(CounterUndecided, c.L7UndecidedAction().String())
	return g
}

// RuleHits returns the hit counts of the running policy's rules, in policy
// order, followed by the special counters (CounterDefault, CounterInvalid,
// CounterPending, CounterStage, CounterUndecided). Counts are totals over
// every queue and every reload that kept the rule's name, and include the
// packets the kernel decided for the rule (mode kernel-first; read over
// netlink).
func (e *Engine) RuleHits() []RuleStats {
	g := e.gen.Load()
	kernel := e.kernelHits()
	out := make([]RuleStats, 0, len(g.rules)+5)
	for i, rc := range append(append([]*ruleCounter(nil), g.rules...), g.def, g.invalid, g.pending, g.stage, g.undecided) {
		out = append(out, RuleStats{Name: rc.name, Action: rc.action, Hits: rc.total() + rc.kernel.Load() + kernel[rc.name]})
		if i < len(g.rules) && g.policy.Rules[i].Action == verdict.ActionAlert {
			out[i].AlertAs = verdict.ActionDrop.String()
			if g.policy.Rules[i].AlertAs == verdict.ActionReject {
				out[i].AlertAs = verdict.ActionReject.String()
			}
		}
	}
	return out
}

// Hits returns the hit count of the rule named name (or one of the Counter*
// names), 0 when no rule had that name.
func (e *Engine) Hits(name string) uint64 {
	e.reg.mu.Lock()
	rc := e.reg.byName[name]
	e.reg.mu.Unlock()
	if rc == nil {
		return 0
	}
	return rc.total() + rc.kernel.Load() + e.kernelHits()[name]
}

// kernelHits reads what the kernel decided per policy rule in the table's
// current generation (mode kernel-first), by rule name, the default under
// CounterDefault; nil without rules or when they cannot be read.
func (e *Engine) kernelHits() map[string]uint64 {
	if e.rules == nil {
		return nil
	}
	cs, err := e.rules.Counters()
	if err != nil {
		return nil
	}
	hits := rules.KernelHits(cs)
	if d, ok := hits[""]; ok {
		delete(hits, "")
		hits[CounterDefault] += d
	}
	return hits
}

// foldKernelHits keeps the kernel counts of a generation that a reload
// replaced (read just before) in the rule counters. Packets the old
// generation decided between that read and the switch are not counted.
func (e *Engine) foldKernelHits(old map[string]uint64) {
	for name, n := range old {
		if n > 0 {
			e.reg.counter(name).kernel.Add(n)
		}
	}
}
