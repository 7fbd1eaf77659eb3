package rules

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/topo"
)

// foreignRuleset is a table of someone else's, with rules, a set and a
// counter object, that qguard must never touch.
const foreignRuleset = `
table ip foreign {
	counter seen {
	}
	set allow { type ipv4_addr; elements = { 198.18.9.9 }; }
	chain filterfwd { type filter hook forward priority -5; policy accept;
		ip saddr @allow counter accept
		meta mark 0x00010000 counter name "seen"
	}
}
table inet qguardx {
	chain c { tcp dport 22 accept; }
}
`

// wantListing is `nft list table inet qguard` for listingConfig.
const wantListing = `table inet qguard {
	set block4 {
		type ipv4_addr
		timeout 10m
	}

	set block6 {
		type ipv6_addr
		timeout 10m
	}

	set dropflow4 {
		type ipv4_addr . ipv4_addr . inet_proto . inet_service . inet_service
		size 65535
		flags dynamic,timeout
		timeout 2m
	}

	set dropflow6 {
		type ipv6_addr . ipv6_addr . inet_proto . inet_service . inet_service
		size 65535
		flags dynamic,timeout
		timeout 2m
	}

	set steer_iifname_g1 {
		type ifname
		elements = { "fw-c",
			     "fw-s" }
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		jump forward_g1 comment "qguard: generation 1"
	}

	chain forward_g1 {
		ct mark & 0x00ff0000 == 0x00010000 counter packets 0 bytes 0 accept comment "qguard: offloaded flow accepted"
		ct mark & 0x00ff0000 == 0x00020000 counter packets 0 bytes 0 drop comment "qguard: offloaded flow dropped"
		ip saddr . ip daddr . meta l4proto . th sport . th dport @dropflow4 counter packets 0 bytes 0 drop comment "qguard: dropped flow"
		ip6 saddr . ip6 daddr . meta l4proto . th sport . th dport @dropflow6 counter packets 0 bytes 0 drop comment "qguard: dropped flow"
		meta mark & 0x00ff0000 == 0x00010000 ct mark set ct mark & 0xff01ffff | 0x00010000 counter packets 0 bytes 0 accept comment "qguard: verdict accept flow"
		meta mark & 0x00ff0000 == 0x00020000 meta nfproto ipv4 ct mark set ct mark & 0xff02ffff | 0x00020000 add @dropflow4 { ip saddr . ip daddr . meta l4proto . th sport . th dport timeout 2m } counter packets 0 bytes 0 drop comment "qguard: verdict drop flow"
		meta mark & 0x00ff0000 == 0x00020000 meta nfproto ipv6 ct mark set ct mark & 0xff02ffff | 0x00020000 add @dropflow6 { ip6 saddr . ip6 daddr . meta l4proto . th sport . th dport timeout 2m } counter packets 0 bytes 0 drop comment "qguard: verdict drop flow"
		meta mark & 0x00ff0000 == 0x00020000 counter packets 0 bytes 0 drop comment "qguard: verdict drop"
		meta mark & 0x00ff0000 == 0x00030000 meta l4proto tcp counter packets 0 bytes 0 reject with tcp reset comment "qguard: verdict reject"
		meta mark & 0x00ff0000 == 0x00030000 counter packets 0 bytes 0 reject comment "qguard: verdict reject"
		iifname @steer_iifname_g1 meta l4proto { tcp, udp } th dport { 53, 8000-8100 } ct state new meta mark & 0x00ff0000 == 0x00000000 counter packets 0 bytes 0 queue flags bypass,fanout to 2-5 comment "qguard: steer to queue"
	}
}
`

func listingConfig(fd int) *Config {
	c := DefaultConfig()
	c.NetNS = fd
	c.Steer = Steer{Protocols: []string{"tcp", "udp", "icmp"}, DPorts: []PortRange{{Lo: 8000, Hi: 8100}, {Lo: 53, Hi: 53}, {Lo: 8050, Hi: 8060}},
		InIfs: []string{"fw-c", "fw-s"}, NewOnly: true}
	c.QueueNum, c.QueueCount, c.Fanout = 2, 4, true
	return c
}

// TestIntegrationListing compares the installed table with nft's view and
// checks that a foreign table is untouched byte for byte by every
// operation, and that Remove leaves nothing of qguard's behind.
func TestIntegrationListing(t *testing.T) {
	ns, fd := testNS(t)
	file := filepath.Join(t.TempDir(), "foreign.nft")
	if err := os.WriteFile(file, []byte(foreignRuleset), 0o600); err != nil {
		t.Fatal(err)
	}
	nft(t, ns, "-f", file)
	foreign := func() string {
		return nft(t, ns, "-j", "list", "table", "ip", "foreign") + nft(t, ns, "-j", "list", "table", "inet", "qguardx")
	}
	before := foreign()

	m, err := New(listingConfig(fd))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(); err != nil {
		t.Fatal(err)
	}
	got := nft(t, ns, "list", "table", "inet", "qguard")
	// nft prints compat targets its own way and warns about them; compare
	// the queue statement separately.
	got = regexp.MustCompile(`(?m)^# Warning.*\n`).ReplaceAllString(got, "")
	got = strings.ReplaceAll(got, "libxtables: unhandled NFPROTO in xtables_set_nfproto\n", "")
	want := wantListing
	if m.QueueImpl() == QueueCompat {
		want = strings.ReplaceAll(want, "queue flags bypass,fanout to 2-5", "queue num 2-5 bypass,fanout")
	}
	if got != want {
		t.Errorf("nft list table inet qguard:\n%s\nwant:\n%s", got, want)
	}
	ops := []struct {
		name string
		fn   func() error
	}{
		{"apply again", m.Apply},
		{"replace", func() error {
			// A shadow base chain of the previous layout, left by a
			// reload that failed half way, and a generation left by a
			// switch that failed are emptied and deleted: the base chains
			// stay (deleting one would drop queued packets), the regular
			// chain goes. The hook no longer configured keeps an empty
			// chain.
			nft(t, ns, "add", "chain", "inet", "qguard", "forward_reload",
				"{ type filter hook forward priority 3; policy accept; }")
			nft(t, ns, "add", "rule", "inet", "qguard", "forward_reload", "udp dport 53 accept")
			nft(t, ns, "add", "chain", "inet", "qguard", "forward_g7")
			c := listingConfig(fd)
			c.Hooks = []Hook{{"input", 5}}
			if err := m.Replace(c); err != nil {
				return err
			}
			list := nft(t, ns, "list", "table", "inet", "qguard")
			var chains []string
			for _, x := range regexp.MustCompile(`chain (\S+) \{`).FindAllStringSubmatch(list, -1) {
				chains = append(chains, x[1])
			}
			sort.Strings(chains)
			if want := []string{"forward", "forward_reload", "input", "input_g8"}; !slices.Equal(chains, want) {
				t.Errorf("chains after replace: %v, want %v", chains, want)
			}
			if got := m.Chains(); !slices.Equal(got, chains) {
				t.Errorf("Chains() = %v, the table has %v", got, chains)
			}
			for _, empty := range []string{"forward", "forward_reload"} {
				if rs := nft(t, ns, "list", "chain", "inet", "qguard", empty); strings.Contains(rs, "accept comment") || strings.Contains(rs, "jump") || strings.Contains(rs, "dport") {
					t.Errorf("chain %s not emptied:\n%s", empty, rs)
				}
			}
			if !strings.Contains(list, "jump input_g8") {
				t.Errorf("input does not jump to the new generation:\n%s", list)
			}
			return nil
		}},
		{"block source", func() error { return m.BlockSource(netip.MustParseAddr("198.18.1.2"), time.Minute) }},
		{"steer away", m.SteerAway},
		{"rename", func() error {
			c := listingConfig(fd)
			c.Table = "qguard2"
			if err := m.Replace(c); err != nil {
				return err
			}
			if tables := nft(t, ns, "list", "tables"); strings.Contains(tables, "inet qguard\n") || !strings.Contains(tables, "inet qguard2\n") {
				t.Errorf("after rename:\n%s", tables)
			}
			return nil
		}},
		{"remove", m.Remove},
		{"remove again", m.Remove},
	}
	for _, op := range ops {
		if err := op.fn(); err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
		if after := foreign(); after != before {
			t.Fatalf("%s changed the foreign tables:\nbefore %s\nafter  %s", op.name, before, after)
		}
	}
	tables := nft(t, ns, "list", "tables")
	if strings.Contains(tables, "inet qguard\n") || strings.Contains(tables, "inet qguard2\n") {
		t.Errorf("qguard table left after Remove:\n%s", tables)
	}
	if !strings.Contains(tables, "table ip foreign") || !strings.Contains(tables, "table inet qguardx") {
		t.Errorf("foreign tables gone:\n%s", tables)
	}
}

// reloadConfigs alternates between two configurations that both steer UDP
// to port 7050: one moves the hook's priority (its jump moves to another
// base chain) and changes the port set.
func reloadConfigs(fd int, bypass bool, num uint16) (a, b *Config) {
	a, b = fwConfig(fd, QueueAuto), fwConfig(fd, QueueAuto)
	b.Hooks = []Hook{{"forward", 7}}
	b.Steer.DPorts = []PortRange{{Lo: 7050, Hi: 7050}, {Lo: 9000, Hi: 9001}}
	for _, c := range []*Config{a, b} {
		c.Bypass, c.QueueNum = bypass, num
	}
	return a, b
}

// replaceWhileSending sends numbered datagrams from the client to port
// while m's rules are replaced n times, the i-th time with
// cfgs[i%len(cfgs)], and returns how many it sent.
func replaceWhileSending(t testing.TB, tp *topo.Topology, port uint16, m *Manager, n int, cfgs ...*Config) uint32 {
	t.Helper()
	u := mustDial(t, tp.Client, "udp", tp.ServerIP4, port)
	var sent atomic.Uint32
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			if _, err := u.Write(binary.BigEndian.AppendUint32(nil, sent.Load()+1)); err == nil {
				sent.Add(1)
			}
			time.Sleep(50 * time.Microsecond)
		}
	})
	defer func() { stop.Store(true); wg.Wait() }()
	for i := range n {
		if err := m.Replace(cfgs[i%len(cfgs)]); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	stop.Store(true)
	wg.Wait()
	return sent.Load()
}

// TestIntegrationReplaceNoWindow proves that a reload never lets traffic
// bypass the policy. The rules steer UDP, fail-closed, to a queue nobody
// listens on, so every steered packet is dropped by the kernel; a stream of
// datagrams runs while the rules are replaced 120 times, alternating port
// sets, with the chain moving to another priority each time or staying. A
// single datagram reaching the server would be a packet that met neither
// the old nor the new rules. (Replaced in one batch, both variants let a
// few through: a new interval set is empty for a moment after the kernel
// switches the rule generation.)
func TestIntegrationReplaceNoWindow(t *testing.T) {
	for _, move := range []bool{true, false} {
		t.Run(map[bool]string{true: "move", false: "same priority"}[move], func(t *testing.T) {
			tp, fd := newTopo(t)
			a, b := reloadConfigs(fd, false, 33)
			if !move {
				b.Hooks = a.Hooks
			}
			m := applied(t, a)
			got := udpServer(t, tp.Server, tp.ServerIP4, 7050)
			const reloads = 120
			sent := replaceWhileSending(t, tp, 7050, m, reloads, b, a)
			time.Sleep(100 * time.Millisecond)
			t.Logf("%d reloads while %d datagrams were sent; %d reached the server", reloads, sent, got.get())
			if sent == 0 {
				t.Fatal("nothing sent")
			}
			if got.get() != 0 {
				t.Fatalf("%d datagrams passed during reloads: the reload opened a window", got.get())
			}
		})
	}
}

// TestIntegrationReloadQueued runs the same reload loop with a handler
// bound (qguard's queue package) and checks each numbered datagram: every
// one the server receives must have been queued. (Moving the priority can
// queue a waiting packet a second time, see the package documentation;
// TestIntegrationSwitchQueuesOnce checks exactly-once without moves.)
func TestIntegrationReloadQueued(t *testing.T) {
	tp, fd := newTopo(t)
	a, b := reloadConfigs(fd, true, 0)
	m := applied(t, a)
	var mu sync.Mutex
	queued := map[uint32]bool{}
	q := bindQueue(t, tp.Firewall, 0, func(flowKey) answer { return accept })
	q.setOnPayload(func(b []byte) {
		if len(b) >= 4 && parseFlow(b) == (flowKey{17, 7050}) { // client to server only
			mu.Lock()
			queued[binary.BigEndian.Uint32(b[len(b)-4:])] = true
			mu.Unlock()
		}
	})
	sink := newSeqSink(t, tp.Server, tp.ServerIP4, 7050)
	const reloads = 60
	sent := replaceWhileSending(t, tp, 7050, m, reloads, b, a)
	time.Sleep(200 * time.Millisecond)
	got := sink.snapshot()
	mu.Lock()
	defer mu.Unlock()
	var received, unqueued int
	for seq, n := range got {
		received += n
		if !queued[seq] {
			unqueued += n
		}
	}
	t.Logf("%d reloads: sent %d, queued %d, received %d, received without a queue record %d",
		reloads, sent, len(queued), received, unqueued)
	if received == 0 || len(queued) == 0 {
		t.Fatal("no traffic went through the queue")
	}
	if unqueued > 0 {
		t.Fatalf("%d datagrams arrived without being queued: the reload opened a window", unqueued)
	}
}

// TestIntegrationBypass: with bypass and no handler traffic flows; without
// it (fail-closed) traffic stops. SteerAway with a handler bound stops
// queueing but lets traffic through.
func TestIntegrationBypass(t *testing.T) {
	tp, fd := newTopo(t)
	got := udpServer(t, tp.Server, tp.ServerIP4, 7060)
	u := mustDial(t, tp.Client, "udp", tp.ServerIP4, 7060)

	m := applied(t, fwConfig(fd, QueueAuto))
	if err := udpExchange(u, time.Second); err != nil {
		t.Fatalf("bypass, no handler: %v", err)
	}
	closed := fwConfig(fd, QueueAuto)
	closed.Bypass = false
	if err := m.Replace(closed); err != nil {
		t.Fatal(err)
	}
	if err := udpExchange(u, 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("fail-closed, no handler: %v, want timeout", err)
	}
	if err := m.SteerAway(); err != nil { // fail-closed: keeps queueing
		t.Fatal(err)
	}
	if err := udpExchange(u, 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("fail-closed after SteerAway: %v, want timeout", err)
	}

	if err := m.Replace(fwConfig(fd, QueueAuto)); err != nil {
		t.Fatal(err)
	}
	q := bindQueue(t, tp.Firewall, 0, func(flowKey) answer { return accept })
	if err := udpExchange(u, time.Second); err != nil {
		t.Fatal(err)
	}
	n := q.count(flowKey{17, 7060})
	if n == 0 {
		t.Fatal("handler bound but nothing queued")
	}
	if err := m.SteerAway(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := udpExchange(u, time.Second); err != nil {
			t.Fatalf("after SteerAway: %v", err)
		}
	}
	if after := q.count(flowKey{17, 7060}); after != n {
		t.Fatalf("after SteerAway %d more packets were queued", after-n)
	}
	_ = got
}

// TestIntegrationBlockSource: a blocked source is dropped in the kernel
// until its entry expires.
func TestIntegrationBlockSource(t *testing.T) {
	tp, fd := newTopo(t)
	m := applied(t, fwConfig(fd, QueueAuto))
	bindQueue(t, tp.Firewall, 0, func(flowKey) answer { return accept })
	for _, srv := range []netip.Addr{tp.ServerIP4, tp.ServerIP6} {
		udpServer(t, tp.Server, srv, 7070)
		u := mustDial(t, tp.Client, "udp", srv, 7070)
		if err := udpExchange(u, time.Second); err != nil {
			t.Fatal(err)
		}
		client := tp.ClientIP4
		if srv.Is6() {
			client = tp.ClientIP6
		}
		if err := m.BlockSource(client, 1500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := udpExchange(u, 300*time.Millisecond); !isTimeout(err) {
			t.Fatalf("blocked %v: %v, want timeout", client, err)
		}
		set := nft(t, tp.Firewall, "list", "set", "inet", "qguard", map[bool]string{true: Block4Set, false: Block6Set}[srv.Is4()])
		if !strings.Contains(set, client.String()+" timeout 1s500ms expires") {
			t.Errorf("block set:\n%s", set)
		}
		time.Sleep(1600 * time.Millisecond)
		if err := udpExchange(u, time.Second); err != nil {
			t.Fatalf("block expired, still: %v", err)
		}
	}
	if err := m.BlockSource(netip.Addr{}, time.Second); err == nil {
		t.Error("BlockSource(invalid address) succeeded")
	}
}

func TestIntegrationShow(t *testing.T) {
	_, fd := testNS(t)
	out := showNS(t, fd, "")
	if !strings.Contains(out, "is not installed") {
		t.Errorf("before Apply:\n%s", out)
	}
	m := applied(t, listingConfig(fd))
	if err := m.BlockSource(netip.MustParseAddr("2001:db8:1::2"), time.Minute); err != nil {
		t.Fatal(err)
	}
	out = showNS(t, fd, "qguard")
	t.Log("\n" + out)
	for _, want := range []string{
		"# kernel ", "using " + m.QueueImpl().String(),
		"set block6 { type ipv6_addr; timeout 10m; } # 1 elements",
		"chain forward {", "type filter hook forward priority filter; policy accept;",
		"ct mark & 0x00ff0000 == 0x00010000 counter packets 0 bytes 0 accept comment \"qguard: offloaded flow accepted\"",
		"meta mark & 0x00ff0000 == 0x00010000 ct mark set ct mark & 0xff01ffff | 0x00010000 counter",
		"ip saddr . ip daddr . meta l4proto . th sport . th dport @dropflow4",
		"\tiifname @steer_iifname_g1", "th dport { 53, 8000-8100 }", "queue num 2-5 bypass,fanout",
		"reject with tcp reset",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Show lacks %q", want)
		}
	}
}
