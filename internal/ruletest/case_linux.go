package ruletest

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/qguard/qguard/internal/topo"
	"github.com/qguard/qguard/verdict"
)

// Special rule names: what `rule:` says and what the engine counts.
var specialRules = map[string]string{"default": verdict.RuleNameDefault, "invalid": verdict.RuleNameInvalid,
	"undecided": verdict.RuleNameUndecided, "pending": verdict.RuleNamePending, "stage": verdict.RuleNameStage}

// engineRuleName maps a case's `rule:` to the engine's counter name.
func engineRuleName(r string) string {
	if s, ok := specialRules[r]; ok {
		return s
	}
	return r
}

// displayRule maps an engine counter name back to what `rule:` says.
func displayRule(r string) string {
	for k, v := range specialRules {
		if v == r {
			return k
		}
	}
	return r
}

func (r *fileRun) endpoints(c *Case) (ns topo.NS, src, dst netip.Addr) {
	t := r.t
	dst = t.ServerIP4
	if c.Family == 6 {
		dst = t.ServerIP6
	}
	switch {
	case c.FromFirewall:
		return t.Firewall, netip.Addr{}, dst
	case c.From.IsValid():
		return t.Client, c.From, dst
	case c.Family == 6:
		return t.Client, t.ClientIP6, dst
	}
	return t.Client, t.ClientIP4, dst
}

func (r *fileRun) probe(ctx context.Context, c *Case, ns topo.NS, env *probeEnv) Probe {
	var pr Probe
	if err := ns.Do(func() error {
		pr = sendProbe(ctx, &c.Send, env)
		return nil
	}); err != nil {
		pr.Outcome, pr.Detail = Errored, err.Error()
	}
	return pr
}

func (r *fileRun) runCase(ctx context.Context, c *Case) (cr CaseResult) {
	start := time.Now()
	defer func() { cr.Duration = time.Since(start) }()
	cr = r.attempt(ctx, c, r.f.Timeout)
	// A packet that should have come back but did not gets one more,
	// longer chance, measured afresh (counters included): a loaded machine
	// must not turn a pass into a fail. So does a case whose connection
	// timed out before its data was sent, whatever it expects: that data
	// was not judged. Repeated probes are not retried: they feed rate
	// limits, whose state a retry would change.
	if cr.Outcome == Dropped.String() && (c.Expect != Dropped || cr.unsent) && c.Repeat == 1 && ctx.Err() == nil {
		first := cr.Detail
		cr = r.attempt(ctx, c, 4*r.f.Timeout)
		cr.Detail += fmt.Sprintf(" (retried with a %v timeout; first attempt: %s)", 4*r.f.Timeout, first)
		if !cr.Passed {
			// Keep the final failure messages in line with the detail.
			for i, f := range cr.Failures {
				if strings.HasPrefix(f, "expected "+c.Expect.String()+", got") {
					cr.Failures[i] = fmt.Sprintf("expected %s, got %s (%s)", c.Expect, cr.Outcome, cr.Detail)
				}
			}
		}
	}
	return cr
}

// attempt sends a case's probes once with the given timeout and judges
// them.
func (r *fileRun) attempt(ctx context.Context, c *Case, timeout time.Duration) CaseResult {
	ns, src, dst := r.endpoints(c)
	cr := CaseResult{File: r.f.Path, Line: c.Line, Name: c.Name, Expected: c.Expect.String(),
		ExpectedRule: c.Rule, Sent: describe(c, src, dst)}
	env := &probeEnv{src: src, sport: c.Send.SPort, dst: dst, timeout: timeout, uid: c.UID, gid: c.GID, mark: c.SocketMark}
	counted := exclusive(c)
	var before map[string]uint64
	if counted {
		r.settle()
		before = r.fw.Counters()
	}
	var pr Probe
	var history []string
	for i := 0; i < c.Repeat; i++ {
		if ctx.Err() != nil {
			cr.Outcome, cr.Failures = Errored.String(), []string{"interrupted"}
			return cr
		}
		pr = r.probe(ctx, c, ns, env)
		if c.Repeat > 1 {
			history = append(history, pr.Outcome.String())
		}
	}
	cr.Outcome, cr.Detail, cr.unsent = pr.Outcome.String(), pr.Detail, pr.Unsent
	if len(history) > 0 {
		cr.Detail += fmt.Sprintf(" [attempts: %s]", strings.Join(history, ", "))
	}
	if c.Expect == Modified && pr.Outcome == Delivered {
		r.checkModified(c, &pr, &cr)
	}
	if !outcomeMatches(c.Expect, pr.Outcome) {
		cr.Failures = append(cr.Failures, fmt.Sprintf("expected %s, got %s (%s)", c.Expect, pr.Outcome, cr.Detail))
	}
	if c.Logged != nil {
		r.checkLogged(c, &pr, &cr)
	}
	traceRule, trace := r.fw.Explain(pr.Src, pr.Dst, pr.Proto)
	cr.Rule = displayRule(traceRule)
	if counted {
		r.settle()
		after := r.fw.Counters()
		cr.Rule = r.checkCounted(c, before, after, traceRule, &cr)
	}
	cr.Passed = len(cr.Failures) == 0
	if !cr.Passed || r.opts.Verbose {
		cr.Trace = trace
	}
	return cr
}

// outcomeMatches: modified implies delivered, so a case expecting
// delivered passes when the packet also got a mark.
func outcomeMatches(want, got Expect) bool {
	return want == got || (want == Delivered && got == Modified)
}

func (r *fileRun) checkModified(c *Case, pr *Probe, cr *CaseResult) {
	marks, err := observedMarks(r.t.Firewall, pr.Src, pr.Proto)
	if err != nil {
		pr.Outcome, cr.Outcome, cr.Detail = Errored, Errored.String(), err.Error()
		return
	}
	mask := r.fw.MarkMask()
	var seen []string
	for _, m := range marks {
		seen = append(seen, fmt.Sprintf("%#x", m))
		user := m &^ mask
		if (c.HasMark && (m == c.Mark || user == c.Mark)) || (!c.HasMark && user != 0) {
			pr.Outcome, cr.Outcome = Modified, Modified.String()
			cr.Detail += fmt.Sprintf(", left the firewall with mark %#x", m)
			return
		}
	}
	if len(seen) == 0 {
		cr.Detail += ", no mark seen leaving the firewall"
	} else {
		cr.Detail += ", marks seen leaving the firewall: " + strings.Join(seen, " ")
	}
}

// checkCounted compares the counter deltas with the case's rule and
// metrics, and returns the rule that decided the traffic.
func (r *fileRun) checkCounted(c *Case, before, after map[string]uint64, traceRule string, cr *CaseResult) string {
	delta := map[string]int64{}
	for k, v := range after {
		delta[k] = int64(v - before[k])
	}
	var hit []string
	for k, d := range delta {
		if name, ok := strings.CutPrefix(k, "hits."); ok && d > 0 && name != "(pending)" {
			hit = append(hit, name)
		}
	}
	sort.Strings(hit)
	decided := ""
	switch {
	case len(hit) == 1:
		decided = hit[0]
	case len(hit) > 1 && contains(hit, traceRule):
		decided = traceRule
	case len(hit) > 1:
		decided = strings.Join(hit, "+")
	}
	if c.Rule != "" {
		want := engineRuleName(c.Rule)
		switch {
		case decided == "":
			cr.Failures = append(cr.Failures, fmt.Sprintf("expected rule %s to match, but no rule decided any packet of this case", c.Rule))
		case !contains(hit, want):
			cr.Failures = append(cr.Failures, fmt.Sprintf("expected rule %s to match, but rule %s matched", c.Rule, displayRule(decided)))
		case len(hit) > 1:
			// The expected rule decided some packets; others (replies,
			// say) were decided by other rules. Name them, but pass.
			cr.Detail += fmt.Sprintf("; rules that decided packets: %s", strings.Join(hit, ", "))
			decided = want
		}
	}
	for _, m := range c.Metrics {
		name := m.Name
		if name == "hits" {
			name = "hits." + engineRuleName(c.Rule)
			if c.Rule == "" {
				cr.Failures = append(cr.Failures, "metrics.hits needs rule: to name the rule")
				continue
			}
		}
		if _, ok := after[name]; !ok {
			cr.Failures = append(cr.Failures, fmt.Sprintf("metrics: no counter %q (known: %s)", m.Name, strings.Join(counterNames(after), ", ")))
			continue
		}
		d := delta[name]
		if (m.AtLeast && d < m.Delta) || (!m.AtLeast && d != m.Delta) {
			op := "=="
			if m.AtLeast {
				op = ">="
			}
			cr.Failures = append(cr.Failures, fmt.Sprintf("metrics: %s changed by %d, expected %s %d", m.Name, d, op, m.Delta))
		}
	}
	return displayRule(decided)
}

func counterNames(m map[string]uint64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// settle waits until the engine has seen no packet for a moment, so that
// stragglers of the previous case (a FIN, a retransmission) are not counted
// against the next one.
func (r *fileRun) settle() {
	last := activity(r.fw.Counters())
	for i := 0; i < 20; i++ {
		time.Sleep(15 * time.Millisecond)
		n := activity(r.fw.Counters())
		if n == last {
			return
		}
		last = n
	}
}

// activity is the packets the queue saw plus the rule hits, which include
// what the kernel decided without queueing (rules mode kernel-first).
func activity(cs map[string]uint64) uint64 {
	n := cs["packets"]
	for k, v := range cs {
		if strings.HasPrefix(k, "hits.") {
			n += v
		}
	}
	return n
}

func (r *fileRun) checkLogged(c *Case, pr *Probe, cr *CaseResult) {
	// Decision lines are written by the queue goroutine right after the
	// verdict; give a straggler a moment.
	var rules []string
	for i := 0; i < 10; i++ {
		if rules = r.fw.Logged(pr.Src, pr.Proto); len(rules) > 0 || !*c.Logged {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	switch {
	case *c.Logged && len(rules) == 0:
		cr.Failures = append(cr.Failures, "expected a decision log line for this flow, found none")
	case !*c.Logged && len(rules) > 0:
		cr.Failures = append(cr.Failures, fmt.Sprintf("expected no decision log line, found one for rule %s", strings.Join(rules, ", ")))
	case len(rules) > 0:
		cr.Detail += ", logged by rule " + strings.Join(rules, ", ")
	}
}
