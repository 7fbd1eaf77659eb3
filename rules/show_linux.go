package rules

import (
	"fmt"
	"sort"
	"strings"

	"github.com/google/nftables"
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
	fmt.Fprintf(&b, "table inet %s {\n", table)
	if err := showSets(&b, c, t); err != nil {
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
	for _, n := range names {
		if err := showChain(&b, c, t, chains[n]); err != nil {
			return "", err
		}
	}
	b.WriteString("}\n")
	return b.String(), nil
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

func showSets(b *strings.Builder, c *nftables.Conn, t *nftables.Table) error {
	sets, err := c.GetSets(t)
	if err != nil {
		return fmt.Errorf("show sets: %w", err)
	}
	for _, s := range sets {
		if s.Anonymous {
			continue
		}
		els, err := c.GetSetElements(s)
		if err != nil {
			return fmt.Errorf("show set %s: %w", s.Name, err)
		}
		fmt.Fprintf(b, "\tset %s { type %s; timeout %v; %d elements }\n", s.Name, s.KeyType.Name, s.Timeout, len(els))
	}
	return nil
}

func showChain(b *strings.Builder, c *nftables.Conn, t *nftables.Table, ch *nftables.Chain) error {
	rs, err := c.GetRules(t, ch)
	if err != nil {
		return fmt.Errorf("show chain %s: %w", ch.Name, err)
	}
	fmt.Fprintf(b, "\tchain %s {\n", ch.Name)
	if ch.Hooknum != nil && ch.Priority != nil {
		fmt.Fprintf(b, "\t\ttype %s hook %s priority %d; policy %s;\n", ch.Type, hookName(ch), int32(*ch.Priority), policyName(ch))
	}
	if ch.Hooknum != nil && len(rs) == 0 {
		// A hook the configuration no longer uses: deleting the chain would
		// make the kernel drop every queued packet.
		b.WriteString("\t\t# empty, kept registered until qguard stops\n")
	}
	for _, r := range rs {
		fmt.Fprintf(b, "\t\t%s\n", formatRule(r))
	}
	b.WriteString("\t}\n")
	return nil
}

func policyName(ch *nftables.Chain) string {
	if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
		return "drop"
	}
	return "accept"
}
