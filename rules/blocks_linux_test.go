package rules

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/topo"
)

// hookRules lists the rules of m's current hook chains, one line each.
func hookRules(t *testing.T, ns topo.NS, m *Manager, table string) [][]string {
	t.Helper()
	m.mu.Lock()
	hooks := append([]string(nil), m.hooks...)
	m.mu.Unlock()
	if len(hooks) == 0 {
		t.Fatal("no hook chains installed")
	}
	var out [][]string
	for _, name := range hooks {
		var rs []string
		for _, l := range strings.Split(nft(t, ns, "list", "chain", "inet", table, name), "\n") {
			if l = strings.TrimSpace(l); strings.Contains(l, `comment "qguard: `) {
				rs = append(rs, l)
			}
		}
		out = append(out, rs)
	}
	return out
}

// blockLookups says whether every hook chain starts with the two block
// set lookups (true), or none has one (false); anything else fails t.
func blockLookups(t *testing.T, ns topo.NS, m *Manager, table string) bool {
	t.Helper()
	var with, without int
	for _, rs := range hookRules(t, ns, m, table) {
		n := 0
		for _, r := range rs {
			if strings.Contains(r, blockNote) {
				n++
			}
		}
		switch {
		case n == 0:
			without++
		case n == 2 && len(rs) > 2 && strings.HasPrefix(rs[0], "ip saddr @block4 ") && strings.HasPrefix(rs[1], "ip6 saddr @block6 "):
			with++
		default:
			t.Fatalf("block lookups not the chain's first two rules:\n%s", strings.Join(rs, "\n"))
		}
	}
	if with > 0 && without > 0 {
		t.Fatalf("%d hook chains with block lookups, %d without", with, without)
	}
	return with > 0
}

func intact(t *testing.T, m *Manager) {
	t.Helper()
	diff, err := m.Verify()
	if err != nil || diff != nil {
		t.Fatalf("Verify: %v %v", diff, err)
	}
}

// TestIntegrationBlockLookups: the hook chains look the block sets up only
// while a block can be in them. The first BlockSource adds the lookups
// with its entry, at the top of every hook chain, as an own change; later
// generations and a daemon taking the table over keep them; a policy that
// can block has them from the start.
func TestIntegrationBlockLookups(t *testing.T) {
	ns, fd := testNS(t)
	cfg := fwConfig(fd, QueueAuto)
	cfg.Hooks = []Hook{{Name: "forward"}, {Name: "output", Priority: 5}}
	m := applied(t, cfg)
	if blockLookups(t, ns, m, "qguard") {
		t.Fatal("block lookups installed with nothing to block")
	}
	intact(t, m)
	if err := m.BlockSource(netip.MustParseAddr("198.51.100.7"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if !blockLookups(t, ns, m, "qguard") {
		t.Fatal("BlockSource added no lookups")
	}
	intact(t, m)
	if set := nft(t, ns, "list", "set", "inet", "qguard", Block4Set); !strings.Contains(set, "198.51.100.7") {
		t.Fatalf("block set:\n%s", set)
	}
	if err := m.BlockSource(netip.MustParseAddr("2001:db8:9::7"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if !blockLookups(t, ns, m, "qguard") {
		t.Fatal("second BlockSource changed the lookups")
	}
	if err := m.Replace(cfg); err != nil {
		t.Fatal(err)
	}
	if !blockLookups(t, ns, m, "qguard") {
		t.Fatal("a reload dropped the lookups")
	}
	intact(t, m)

	// A new Manager over the table (a restart) finds the entries.
	m2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Apply(); err != nil {
		t.Fatal(err)
	}
	if !blockLookups(t, ns, m2, "qguard") {
		t.Fatal("taking over a table with blocked sources dropped the lookups")
	}
	intact(t, m2)

	// A kernel-first policy with block_source has them before any block.
	kf := fwConfig(fd, QueueAuto)
	kf.Table, kf.Mode = "qgblk", KernelFirst
	kf.Policy = &Policy{Default: ActionAccept, Rules: []PolicyRule{
		{Name: "scan", Protos: []uint8{17}, DPorts: []PortRange{{Lo: 9, Hi: 9}}, Action: ActionDrop, BlockSource: time.Minute},
	}}
	m3 := applied(t, kf)
	if !blockLookups(t, ns, m3, "qgblk") {
		t.Fatal("a policy with block_source has no block lookups")
	}
	intact(t, m3)
}
