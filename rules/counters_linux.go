package rules

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// RuleCounter is the packet and byte count of one rule in qguard's table.
type RuleCounter struct {
	// Chain is the hook name (the rules live in the chain of the current
	// generation, "<hook>_g<n>"); Rule the rule's comment without
	// "qguard: ", e.g. "steer to queue", "offloaded flow accepted",
	// "blocked source". Counters restart with every generation.
	Chain, Rule    string
	Packets, Bytes uint64
	// Handle identifies the rule in its table: a counter under a new
	// handle (the rule was replaced, e.g. by a reload) starts from zero.
	Handle uint64
}

// Counters reads every rule's counter, for metrics and benchmarks: how
// many packets were queued, decided by an offloaded conntrack mark,
// dropped by a block or drop-flow set, or rejected. It reads the chains of
// the generation the Manager installed (the daemon samples it every
// second, so it asks the kernel for no more than those), or, before this
// Manager installed anything, every chain of the table.
func (m *Manager) Counters() ([]RuleCounter, error) {
	c, err := m.dial()
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	for range 2 {
		m.mu.Lock()
		table, gen := m.cfg.Table, slices.Clone(m.gen)
		m.mu.Unlock()
		t := inetTable(table)
		if len(gen) == 0 {
			return tableCounters(c, t)
		}
		out, err := chainCounters(c, t, gen)
		m.mu.Lock()
		moved := !slices.Equal(gen, m.gen)
		m.mu.Unlock()
		if err == nil || !moved {
			return out, err
		}
		// A reload or repair replaced the generation meanwhile: read the
		// new one.
	}
	return nil, fmt.Errorf("read counters: %w: the generation keeps changing", ErrNotInstalled)
}

// tableCounters reads the counters of every chain of table t.
func tableCounters(c *nftables.Conn, t *nftables.Table) ([]RuleCounter, error) {
	chains, _, err := current(c, t)
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	if len(chains) == 0 {
		return nil, fmt.Errorf("read counters: %w", ErrNotInstalled)
	}
	return chainCounters(c, t, sortedNames(chains))
}

// chainCounters reads the counters of the chains named names in table t.
func chainCounters(c *nftables.Conn, t *nftables.Table, names []string) ([]RuleCounter, error) {
	var out []RuleCounter
	for _, name := range names {
		ch := &nftables.Chain{Name: name, Table: t}
		rs, err := c.GetRules(t, ch)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				err = ErrNotInstalled
			}
			return nil, fmt.Errorf("read counters of %s: %w", name, err)
		}
		out = append(out, countersOf(ch, rs)...)
	}
	return out, nil
}

func countersOf(ch *nftables.Chain, rs []*nftables.Rule) []RuleCounter {
	var out []RuleCounter
	hook := ch.Name
	if stem, _, ok := parseGen(hook); ok {
		hook = stem
	}
	for _, r := range rs {
		note, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		rc := RuleCounter{Chain: hook, Rule: strings.TrimPrefix(note, "qguard: "), Handle: r.Handle}
		counted := false
		for _, e := range r.Exprs {
			if c, ok := e.(*expr.Counter); ok {
				rc.Packets, rc.Bytes, counted = c.Packets, c.Bytes, true
			}
		}
		if counted { // the base chains' jumps have no counter
			out = append(out, rc)
		}
	}
	return out
}

// SteerRule is the name (comment) of the steering rules that queue packets.
const SteerRule = "steer to queue"

// Queues reports whether the rule named rule queues packets: a steering
// rule, or (mode KernelFirst) a policy rule's queue rule, "rule NAME ->
// queue: why" (also "default -> queue: why").
func Queues(rule string) bool {
	return rule == SteerRule || strings.Contains(rule, " -> queue: ")
}

// Sum adds the packets of every counter whose rule is named rule.
func Sum(cs []RuleCounter, rule string) (packets uint64) {
	for _, c := range cs {
		if c.Rule == rule {
			packets += c.Packets
		}
	}
	return packets
}

// KernelHits sums the counters of the policy rules the kernel decided, by
// rule name (policy mode KernelFirst); the default's are under "" . The
// queue rules of rules that user space decides are not hits: user space
// counts those packets when it decides them.
func KernelHits(cs []RuleCounter) map[string]uint64 {
	out := map[string]uint64{}
	for _, c := range cs {
		if strings.Contains(c.Rule, " -> queue: ") {
			continue
		}
		if name, ok := strings.CutPrefix(c.Rule, "rule "); ok {
			out[name] += c.Packets
		} else if c.Rule == defaultNote {
			out[""] += c.Packets
		}
	}
	return out
}
