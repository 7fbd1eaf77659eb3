package rules

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
)

// Show describes, in the caller's network namespace, what qguard's inet
// table name ("" means "qguard") holds, after the kernel's queue
// capabilities. See ShowNS.
func Show(table string) (string, error) { return ShowNS(0, table) }

// ShowNS describes the table in the namespace open as netnsFd (0: the
// caller's): the probe results, then sets (with their element count) and
// chains with their rules in nft-like syntax, counters included.
func ShowNS(netnsFd int, table string) (string, error) {
	if table == "" {
		table = "qguard"
	}
	dial := dialer(netnsFd)
	var b strings.Builder
	caps, err := probe(dial)
	if err != nil {
		return "", fmt.Errorf("show rules: %w", err)
	}
	fmt.Fprintf(&b, "# %s\n", caps)
	c, err := dial()
	if err != nil {
		return "", fmt.Errorf("show rules: %w", err)
	}
	t := inetTable(table)
	chains, _, err := current(c, t)
	if err != nil {
		return "", fmt.Errorf("show rules: %w", err)
	}
	tables, err := c.ListTablesOfFamily(t.Family)
	if err != nil {
		return "", fmt.Errorf("show rules: %w", err)
	}
	found := false
	for _, x := range tables {
		found = found || x.Name == table
	}
	if !found {
		fmt.Fprintf(&b, "# table inet %s is not installed\n", table)
		return b.String(), nil
	}
	var body strings.Builder
	fmt.Fprintf(&body, "table inet %s {\n", table)
	anon, err := showSets(&body, c, t)
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(chains))
	for n := range chains {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := chainOrder(chains[names[i]]), chainOrder(chains[names[j]])
		if a != b {
			return a < b
		}
		return genOf(names[i]) < genOf(names[j]) || genOf(names[i]) == genOf(names[j]) && names[i] < names[j]
	})
	compat := false
	for _, n := range names {
		xt, err := showChain(&body, c, t, chains[n], anon)
		if err != nil {
			return "", err
		}
		compat = compat || xt
	}
	body.WriteString("}\n")
	if compat {
		b.WriteString(compatNote)
	}
	b.WriteString(body.String())
	for _, n := range names {
		stem, _, ok := parseGen(n)
		hook, isPolicy := strings.CutSuffix(stem, policyChainSuffix)
		if !ok || !isPolicy {
			continue
		}
		rs, err := c.GetRules(t, chains[n])
		if err != nil {
			return "", fmt.Errorf("show rules of %s: %w", n, err)
		}
		fmt.Fprintf(&b, "# where the policy runs at hook %s (rules.mode kernel-first):\n", hook)
		for _, l := range strings.Split(strings.TrimSuffix(FormatPlan(planOf(rs)), "\n"), "\n") {
			fmt.Fprintf(&b, "#   %s\n", l)
		}
	}
	return b.String(), nil
}

// planOf reads a plan back from a policy chain's rule comments: a rule
// runs in the kernel, in the queue (with the reason), or both (a reject at
// the output hook queues datagrams).
func planOf(rs []*nftables.Rule) []Place {
	var out []Place
	at := map[string]int{}
	for _, r := range rs {
		note, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		note = strings.TrimPrefix(note, "qguard: ")
		name, why, queued := strings.Cut(note, " -> queue: ")
		if n, ok := strings.CutPrefix(name, "rule "); ok {
			name = n
		} else if name == defaultNote {
			name = "(default)"
		}
		i, seen := at[name]
		if !seen {
			at[name] = len(out)
			out = append(out, Place{Rule: name, Kernel: !queued, Why: why})
			continue
		}
		p := &out[i]
		switch {
		case queued && p.Kernel:
			p.Why = "kernel, and queue for " + why
			p.Kernel = false
		case !queued && !p.Kernel && !strings.HasPrefix(p.Why, "kernel, "):
			p.Why = "kernel, and queue for " + p.Why
		}
	}
	return out
}

// chainOrder lists the base chains by hook and priority, then the
// generation chains by hook.
func chainOrder(ch *nftables.Chain) int64 {
	if ch.Hooknum == nil {
		stem, _, _ := parseGen(ch.Name)
		n, ok := hookNums[stem]
		if !ok {
			n = 99
		}
		return 1<<40 + int64(n)
	}
	var prio int64
	if ch.Priority != nil {
		prio = int64(int32(*ch.Priority))
	}
	return int64(*ch.Hooknum)<<33 + prio
}

func genOf(name string) uint64 {
	_, n, _ := parseGen(name)
	return n
}

// showSets prints the named sets and returns the anonymous sets' contents,
// which the rules that use them print in place, as nft does.
func showSets(b *strings.Builder, c *nftables.Conn, t *nftables.Table) (map[string]*setContent, error) {
	sets, err := c.GetSets(t)
	if err != nil {
		return nil, fmt.Errorf("show sets: %w", err)
	}
	anon := map[string]*setContent{}
	for _, s := range sets {
		els, err := c.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("show set %s: %w", s.Name, err)
		}
		if s.Anonymous {
			anon[s.Name] = &setContent{interval: s.Interval, elems: els}
			continue
		}
		timeout := ""
		switch {
		case s.Timeout > 0:
			timeout = " timeout " + nftDuration(s.Timeout) + ";"
		case s.HasTimeout:
			timeout = " flags timeout;" // each element has its own (the name sets)
		}
		if s.IsMap {
			key, data := s.KeyType.Name, s.DataType.Name
			if key == nftables.TypeVerdict.Name && data == "" {
				// The library reads a verdict map's data type into its key
				// type; qguard's one verdict map is keyed by rule index.
				key, data = nftables.TypeInteger.Name, nftables.TypeVerdict.Name
			}
			fmt.Fprintf(b, "\tmap %s { type %s : %s;%s } # %d elements\n", s.Name, key, data, timeout, len(els))
			continue
		}
		fmt.Fprintf(b, "\tset %s { type %s;%s } # %d elements\n", s.Name, s.KeyType.Name, timeout, len(els))
	}
	return anon, nil
}

// showChain prints one chain and says whether a rule in it uses an xtables
// target (the compat queue target).
func showChain(b *strings.Builder, c *nftables.Conn, t *nftables.Table, ch *nftables.Chain, anon map[string]*setContent) (compat bool, err error) {
	rs, err := c.GetRules(t, ch)
	if err != nil {
		return false, fmt.Errorf("show chain %s: %w", ch.Name, err)
	}
	fmt.Fprintf(b, "\tchain %s {\n", ch.Name)
	if ch.Hooknum != nil && ch.Priority != nil {
		fmt.Fprintf(b, "\t\ttype %s hook %s priority %s; policy %s;\n", ch.Type, hookName(ch), priorityName(int32(*ch.Priority)), policyName(ch))
	}
	if ch.Hooknum != nil && len(rs) == 0 {
		// A hook the configuration no longer uses: deleting the chain would
		// make the kernel drop every queued packet.
		b.WriteString("\t\t# empty, kept registered until qguard stops\n")
	}
	for _, r := range rs {
		fmt.Fprintf(b, "\t\t%s\n", formatRuleSets(r, anon))
		for _, e := range r.Exprs {
			_, xt := e.(*expr.Target)
			compat = compat || xt
		}
	}
	b.WriteString("\t}\n")
	return compat, nil
}

func policyName(ch *nftables.Chain) string {
	if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
		return "drop"
	}
	return "accept"
}

// priorityName spells a priority as nft does in an inet table: by its
// standard name, or offset from the nearest ("filter + 5"), else a number.
func priorityName(p int32) string {
	for _, n := range []struct {
		name string
		v    int32
	}{{"raw", -300}, {"mangle", -150}, {"dstnat", -100}, {"filter", 0}, {"security", 50}, {"srcnat", 100}} {
		switch d := p - n.v; {
		case d == 0:
			return n.name
		case d > 0 && d <= 10:
			return fmt.Sprintf("%s + %d", n.name, d)
		case d < 0 && d >= -10:
			return fmt.Sprintf("%s - %d", n.name, -d)
		}
	}
	return strconv.Itoa(int(p))
}

// compatNote explains what nft prints about the xtables NFQUEUE target.
const compatNote = `# This kernel has no nftables queue expression (CONFIG_NFT_QUEUE), so the
# rules that steer packets to the queues use the xtables NFQUEUE target
# through nftables' compat expression, as iptables-nft does. nft list
# ruleset therefore prints "# Warning: table inet qguard is managed by
# iptables-nft, do not touch!" above this table and "libxtables: unhandled
# NFPROTO in xtables_set_nfproto" inside the steering rules: both are about
# that target (iptables knows no inet family), not errors in the table.
# qguard owns the table; change it through the configuration, not nft.
`
