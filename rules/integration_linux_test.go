package rules

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// fwConfig is a forward-hook configuration for the firewall namespace.
func fwConfig(fd int, impl QueueImpl) *Config {
	c := DefaultConfig()
	c.NetNS = fd
	c.Queue = impl
	return c
}

// applied creates a Manager and applies it; the table is removed at cleanup.
func applied(t testing.TB, cfg *Config) *Manager {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, m)
	return m
}

// apply installs m's table, removed when the test ends.
func apply(t testing.TB, m *Manager) {
	t.Helper()
	if err := m.Apply(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Remove() })
}

// showNS is ShowNS of table in the namespace fd for a test.
func showNS(t testing.TB, fd int, table string) string {
	t.Helper()
	out, err := ShowNS(fd, table)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// queueImpls lists the queue paths to cover, skipping the native one only
// where the probe says the kernel lacks it.
func queueImpls(t testing.TB) []QueueImpl {
	t.Helper()
	_, fd := testNS(t)
	caps, err := ProbeNS(fd)
	if err != nil {
		t.Fatal(err)
	}
	if !caps.CompatQueue && !caps.NativeQueue {
		t.Fatalf("kernel has no queue expression at all: %v", caps)
	}
	var out []QueueImpl
	if caps.NativeQueue {
		out = append(out, QueueNative)
	} else {
		t.Logf("native queue path not covered: %s", caps.NativeErr)
	}
	if caps.CompatQueue {
		out = append(out, QueueCompat)
	}
	return out
}

func TestIntegrationProbe(t *testing.T) {
	ns, fd := testNS(t)
	caps, err := ProbeNS(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(caps)
	if _, err := caps.Best(); err != nil {
		t.Fatal(err)
	}
	// iptables-nft's NFQUEUE target is what this kernel family has; if the
	// native expression is missing the compat one must be there.
	if !caps.NativeQueue && !caps.CompatQueue {
		t.Fatal("neither queue path available")
	}
	if out := nft(t, ns, "list", "ruleset"); strings.TrimSpace(out) != "" {
		t.Fatalf("probe left rules behind:\n%s", out)
	}
}

// TestIntegrationOffload runs testOffload over both queue paths: the
// compat target must be there (qguard falls back to it), the native
// expression is skipped only where the probe finds it missing.
func TestIntegrationOffload(t *testing.T) {
	_, fd := testNS(t)
	caps, err := ProbeNS(fd)
	if err != nil {
		t.Fatal(err)
	}
	if !caps.CompatQueue {
		t.Fatalf("compat NFQUEUE target missing: %s", caps.CompatErr)
	}
	t.Run("native", func(t *testing.T) {
		if !caps.NativeQueue {
			t.Skipf("kernel lacks the nft queue expression (CONFIG_NFT_QUEUE): %s", caps.NativeErr)
		}
		testOffload(t, QueueNative)
	})
	t.Run("compat", func(t *testing.T) { testOffload(t, QueueCompat) })
}

// testOffload: a TCP flow answered AcceptFlow is queued once (its SYN) and
// then handled by the kernel; a UDP flow answered DropFlow is queued once
// and stays dropped; a flow answered plain accept is queued packet by
// packet. IPv4 and IPv6 both go through the inet table.
func testOffload(t *testing.T, impl QueueImpl) {
	tp, fd := newTopo(t)
	m := applied(t, fwConfig(fd, impl))
	if got := m.QueueImpl(); got != impl {
		t.Fatalf("queue implementation %v, want %v", got, impl)
	}
	marks := m.Config().Marks
	q := bindQueue(t, tp.Firewall, 0, func(k flowKey) answer {
		switch k {
		case flowKey{6, 7001}:
			return repeat(marks.AcceptFlow)
		case flowKey{17, 7002}:
			return repeat(marks.DropFlow)
		}
		return accept
	})
	for _, srv := range []netip.Addr{tp.ServerIP4, tp.ServerIP6} {
		t.Run(map[bool]string{true: "ipv4", false: "ipv6"}[srv.Is4()], func(t *testing.T) {
			before := q.count(flowKey{6, 7001})
			tcpServer(t, tp.Server, srv, 7001)
			c := mustDial(t, tp.Client, "tcp", srv, 7001)
			if err := echo(c, 20); err != nil {
				t.Fatal(err)
			}
			if n := q.count(flowKey{6, 7001}) - before; n != 1 {
				t.Errorf("offloaded TCP flow: %d packets queued, want 1 (the SYN)", n)
			}
			cs := mustCounters(t, m)
			// Both directions of 20 echoes after the handshake bypass the queue.
			if n := Sum(cs, "offloaded flow accepted"); n < 40 {
				t.Errorf("offloaded-flow rule counted %d packets, want >= 40", n)
			}

			before = q.count(flowKey{6, 7003})
			tcpServer(t, tp.Server, srv, 7003)
			c2 := mustDial(t, tp.Client, "tcp", srv, 7003)
			if err := echo(c2, 5); err != nil {
				t.Fatal(err)
			}
			if n := q.count(flowKey{6, 7003}) - before; n < 7 {
				t.Errorf("queued TCP flow: %d client packets queued, want every one (>= 7)", n)
			}

			before = q.count(flowKey{17, 7002})
			got := udpServer(t, tp.Server, srv, 7002)
			u := mustDial(t, tp.Client, "udp", srv, 7002)
			for i := 0; i < 5; i++ {
				if err := udpExchange(u, 200*time.Millisecond); !isTimeout(err) {
					t.Fatalf("dropped UDP flow, datagram %d: %v, want a timeout", i, err)
				}
			}
			if n := q.count(flowKey{17, 7002}) - before; n != 1 {
				t.Errorf("dropped UDP flow: %d packets queued, want 1", n)
			}
			if got.get() != 0 {
				t.Errorf("dropped UDP flow: server got %d datagrams", got.get())
			}
		})
	}
}

func TestIntegrationReject(t *testing.T) {
	tp, fd := newTopo(t)
	m := applied(t, fwConfig(fd, QueueAuto))
	reject := m.Config().Marks.Reject
	q := bindQueue(t, tp.Firewall, 0, func(flowKey) answer { return repeat(reject) })
	for _, srv := range []netip.Addr{tp.ServerIP4, tp.ServerIP6} {
		checkRejected(t, tp, tp.Client, srv, 7010, 7011)
	}
	if q.all() == 0 {
		t.Fatal("nothing was queued")
	}
}

// TestIntegrationSteering: only the configured protocol and ports reach the
// queue; the rest passes untouched.
func TestIntegrationSteering(t *testing.T) {
	tp, fd := newTopo(t)
	cfg := fwConfig(fd, QueueAuto)
	cfg.Steer = Steer{Protocols: []string{"tcp"}, DPorts: []PortRange{{Lo: 7020, Hi: 7020}, {Lo: 7030, Hi: 7031}},
		InIfs: []string{"fw-c", "fw-x"}, Sources: []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24")}}
	applied(t, cfg)
	q := bindQueue(t, tp.Firewall, 0, func(flowKey) answer { return accept })
	for _, port := range []uint16{7020, 7031, 7040} {
		tcpServer(t, tp.Server, tp.ServerIP4, port)
		tcpServer(t, tp.Server, tp.ServerIP6, port)
		for _, srv := range []netip.Addr{tp.ServerIP4, tp.ServerIP6} {
			c := mustDial(t, tp.Client, "tcp", srv, port)
			if err := echo(c, 3); err != nil {
				t.Fatal(err)
			}
			c.Close()
		}
	}
	udp := udpServer(t, tp.Server, tp.ServerIP4, 7020)
	u := mustDial(t, tp.Client, "udp", tp.ServerIP4, 7020)
	if err := udpExchange(u, time.Second); err != nil {
		t.Fatal(err)
	}
	u.Close()
	// Only IPv4 (the only source prefix) TCP to 7020 and 7031 is queued.
	if q.count(flowKey{6, 7020}) == 0 || q.count(flowKey{6, 7031}) == 0 {
		t.Errorf("steered ports not queued: %v", q.counts)
	}
	if n := q.count(flowKey{6, 7040}); n != 0 {
		t.Errorf("port 7040 is not steered but %d packets were queued", n)
	}
	if n := q.count(flowKey{17, 7020}); n != 0 || udp.get() != 1 {
		t.Errorf("UDP is not steered: queued %d, server got %d", n, udp.get())
	}
	// 3 handshake/echo rounds: v4 gets >= 5 packets per flow; v6 none.
	if n := q.count(flowKey{6, 7020}); n > 20 {
		t.Errorf("port 7020: %d packets queued, IPv6 must not be steered", n)
	}
}
