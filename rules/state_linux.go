package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
)

// tableState is what qguard's table holds, as far as the guard compares
// it: chains (hook, priority, policy) with their rules in order, the
// table's flags, and the elements of the steering sets. Counters and rule
// handles are left out (they change without anyone changing the policy),
// and so are the block and drop-flow sets, whose elements the daemon and
// the kernel's dynset change all the time.
type tableState struct {
	Present bool
	Flags   uint32
	Chains  map[string]chainState
	Sets    map[string]string
}

type chainState struct {
	Hook  string
	Rules []ruleState
}

// ruleState is one rule's fingerprint and, for messages, what it is.
type ruleState struct {
	Key  string
	Note string
}

// guardedSet says whether a named set's elements are part of the state.
func guardedSet(s *nftables.Set) bool {
	if s.Anonymous || s.Dynamic || s.HasTimeout {
		return false
	}
	switch s.Name {
	case Block4Set, Block6Set, DropFlow4Set, DropFlow6Set:
		return false
	}
	return true
}

// readState lists table t as the kernel has it.
func readState(c *nftables.Conn, t *nftables.Table) (*tableState, error) {
	st := &tableState{Chains: map[string]chainState{}, Sets: map[string]string{}}
	tables, err := c.ListTablesOfFamily(t.Family)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	for _, x := range tables {
		if x.Name == t.Name {
			st.Present, st.Flags = true, x.Flags
		}
	}
	if !st.Present {
		return st, nil
	}
	chains, err := c.ListChainsOfTableFamily(t.Family)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name != t.Name {
			continue
		}
		rs, err := c.GetRules(t, ch)
		if err != nil {
			return nil, fmt.Errorf("list rules of %s: %w", ch.Name, err)
		}
		cs := chainState{Hook: hookKey(ch)}
		for _, r := range rs {
			cs.Rules = append(cs.Rules, ruleKey(r))
		}
		st.Chains[ch.Name] = cs
	}
	sets, err := c.GetSets(t)
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	for _, s := range sets {
		if !guardedSet(s) {
			st.Sets[s.Name] = ""
			continue
		}
		els, err := c.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("list set %s: %w", s.Name, err)
		}
		keys := make([]string, 0, len(els))
		for _, e := range els {
			keys = append(keys, fmt.Sprintf("%x-%x", e.Key, e.KeyEnd))
		}
		sort.Strings(keys)
		st.Sets[s.Name] = strings.Join(keys, ",")
	}
	return st, nil
}

func hookKey(ch *nftables.Chain) string {
	if ch.Hooknum == nil {
		return "regular"
	}
	s := fmt.Sprintf("type %s hook %d", ch.Type, *ch.Hooknum)
	if ch.Priority != nil {
		s += fmt.Sprintf(" priority %d", *ch.Priority)
	}
	if ch.Policy != nil {
		s += fmt.Sprintf(" policy %d", *ch.Policy)
	}
	return s
}

// ruleKey fingerprints a rule by its expressions (counters zeroed) and its
// comment.
func ruleKey(r *nftables.Rule) ruleState {
	var b bytes.Buffer
	for _, e := range r.Exprs {
		if _, ok := e.(*expr.Counter); ok {
			e = &expr.Counter{}
		}
		j, err := json.Marshal(e)
		if err != nil {
			j = []byte(err.Error())
		}
		fmt.Fprintf(&b, "%T%s;", e, j)
	}
	note, ok := userdata.GetString(r.UserData, userdata.TypeComment)
	fmt.Fprintf(&b, "%q", note)
	if !ok || !strings.HasPrefix(note, "qguard: ") {
		note = formatRule(r)
	} else {
		note = strings.TrimPrefix(note, "qguard: ")
	}
	return ruleState{Key: b.String(), Note: note}
}

// shape is the state with the names a re-install may change replaced: a
// generation's regular chains are named "<hook>_g<n>" and the base chains'
// jumps name them, anonymous sets are renumbered. What remains must come
// back the same from every Apply.
func (s *tableState) shape() *tableState {
	c := &tableState{Present: s.Present, Flags: s.Flags, Chains: map[string]chainState{}, Sets: map[string]string{}}
	for name, ch := range s.Chains {
		n := genSuffix.ReplaceAllString(name, "_g*")
		out := chainState{Hook: ch.Hook}
		for _, r := range ch.Rules {
			k := genRef.ReplaceAllString(r.Key, "_g*$1")
			k = anonSetRe.ReplaceAllString(k, "__set*")
			k = genNote.ReplaceAllString(k, "generation *")
			out.Rules = append(out.Rules, ruleState{Key: k, Note: r.Note})
		}
		c.Chains[n] = out
	}
	for name, v := range s.Sets {
		if !strings.HasPrefix(name, "__set") {
			c.Sets[genSuffix.ReplaceAllString(name, "_g*")] = v
		}
	}
	return c
}

var (
	genSuffix = regexp.MustCompile(`_g[0-9]+$`)
	genRef    = regexp.MustCompile(`_g[0-9]+("|\\u0000|;)`)
	anonSetRe = regexp.MustCompile(`__set[0-9]+`)
	genNote   = regexp.MustCompile(`generation [0-9]+`)
)

// diff describes how have differs from want, one phrase per change; nil
// when they agree.
func (want *tableState) diff(have *tableState, table string) []string {
	if want == nil || have == nil {
		return nil
	}
	switch {
	case want.Present && !have.Present:
		return []string{"table inet " + table + " deleted"}
	case !want.Present && have.Present:
		return []string{"table inet " + table + " created"}
	case !want.Present:
		return nil
	}
	var out []string
	if want.Flags != have.Flags {
		out = append(out, fmt.Sprintf("table flags %#x, want %#x", have.Flags, want.Flags))
	}
	for _, name := range sortedNames(want.Chains) {
		w := want.Chains[name]
		h, ok := have.Chains[name]
		if !ok {
			out = append(out, "chain "+name+" deleted")
			continue
		}
		if h.Hook != w.Hook {
			out = append(out, fmt.Sprintf("chain %s is %q, want %q", name, h.Hook, w.Hook))
		}
		out = append(out, diffRules(name, w.Rules, h.Rules)...)
	}
	for _, name := range sortedNames(have.Chains) {
		if _, ok := want.Chains[name]; !ok {
			out = append(out, "chain "+name+" added")
		}
	}
	for _, name := range sortedNames(want.Sets) {
		h, ok := have.Sets[name]
		switch {
		case !ok:
			out = append(out, "set "+name+" deleted")
		case h != want.Sets[name]:
			out = append(out, "set "+name+" elements changed")
		}
	}
	for _, name := range sortedNames(have.Sets) {
		if _, ok := want.Sets[name]; !ok && !strings.HasPrefix(name, "__set") {
			out = append(out, "set "+name+" added")
		}
	}
	return out
}

// diffRules names the rules deleted from and added to chain, or says the
// order changed.
func diffRules(chain string, want, have []ruleState) []string {
	count := map[string]int{}
	for _, r := range have {
		count[r.Key]++
	}
	var out []string
	for _, r := range want {
		if count[r.Key] > 0 {
			count[r.Key]--
			continue
		}
		out = append(out, fmt.Sprintf("chain %s: rule %q deleted", chain, r.Note))
	}
	count = map[string]int{}
	for _, r := range want {
		count[r.Key]++
	}
	for _, r := range have {
		if count[r.Key] > 0 {
			count[r.Key]--
			continue
		}
		out = append(out, fmt.Sprintf("chain %s: rule %q added", chain, r.Note))
	}
	if out == nil && len(want) == len(have) {
		for i := range want {
			if want[i].Key != have[i].Key {
				return []string{"chain " + chain + ": rules reordered"}
			}
		}
	}
	return out
}
