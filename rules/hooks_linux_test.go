package rules

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/qguard/qguard/queue"
)

// TestIntegrationQueueRange: a range of queues is used, and every packet
// lands inside it. Without fanout the NFQUEUE target (like the native
// expression) balances by a hash of the address pair, not the ports, so
// the test uses 16 client addresses.
func TestIntegrationQueueRange(t *testing.T) {
	for _, fanout := range []bool{false, true} {
		t.Run(map[bool]string{false: "hash", true: "fanout"}[fanout], func(t *testing.T) {
			var srcs []netip.Addr
			for i := 3; i < 19; i++ {
				srcs = append(srcs, netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}))
			}
			tp, fd := newTopo(t, srcs...)
			cfg := fwConfig(fd, QueueAuto)
			cfg.QueueNum, cfg.QueueCount, cfg.Fanout = 4, 2, fanout
			cfg.Steer.Protocols = []string{"udp"}
			applied(t, cfg)
			q := bindQueues(t, tp.Firewall, 4, 2, func(flowKey) answer { return accept })
			udpServer(t, tp.Server, tp.ServerIP4, 7090)
			for _, src := range srcs {
				u := mustDialFrom(t, tp.Client, "udp", src, tp.ServerIP4, 7090)
				if err := udpExchange(u, time.Second); err != nil {
					t.Fatal(err)
				}
				u.Close()
			}
			q.mu.Lock()
			defer q.mu.Unlock()
			if q.byQueue[4]+q.byQueue[5] != q.total || q.total < 32 {
				t.Fatalf("per queue %v, total %d: want 32 packets, all in queues 4-5", q.byQueue, q.total)
			}
			if !fanout && (q.byQueue[4] == 0 || q.byQueue[5] == 0) {
				t.Errorf("16 address pairs hashed onto one queue only: %v", q.byQueue)
			}
		})
	}
}

// TestIntegrationLocalHooks: chains at output and input both steer local
// traffic, so a datagram over loopback is queued at each hook.
func TestIntegrationLocalHooks(t *testing.T) {
	ns, fd := testNS(t)
	cfg := DefaultConfig()
	cfg.NetNS = fd
	cfg.Hooks = []Hook{{"output", -10}, {"input", 10}}
	cfg.Steer = Steer{Protocols: []string{"udp"}, DPorts: []PortRange{{Lo: 7100, Hi: 7100}}}
	applied(t, cfg)
	var mu sync.Mutex
	hooks := map[uint8]int{}
	var qs *queue.Queues
	if err := ns.Do(func() (err error) {
		qs, err = queue.Open(&queue.Config{Num: 0, CopyRange: 64})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = qs.Run(t.Context(), func(p *queue.Packet) {
			mu.Lock()
			hooks[p.Hook]++
			mu.Unlock()
			p.Accept()
		})
	}()
	t.Cleanup(func() { _ = qs.Close() })
	lo := netip.MustParseAddr("127.0.0.1")
	udpServer(t, ns, lo, 7100)
	other := udpServer(t, ns, lo, 7101)
	for _, port := range []uint16{7100, 7101} {
		u := mustDial(t, ns, "udp", lo, port)
		if err := udpExchange(u, time.Second); err != nil {
			t.Fatal(err)
		}
		u.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	// NF_INET_LOCAL_OUT is 3, NF_INET_LOCAL_IN 1; only dport 7100 is steered.
	if hooks[3] != 1 || hooks[1] != 1 || len(hooks) != 2 {
		t.Errorf("queued per hook %v, want one at output (3) and one at input (1)", hooks)
	}
	if other.get() != 1 {
		t.Errorf("unsteered port: server got %d", other.get())
	}
}

// TestIntegrationLocalReject: a connect or datagram from the firewall's
// own namespace, steered at output and rejected, fails at once with
// ECONNREFUSED. The kernel's answer (TCP reset, ICMP port unreachable)
// carries the rejected packet's unconfirmed conntrack entry; were it
// queued, nfnetlink_queue would drop it and the sender would wait for its
// timeout.
func TestIntegrationLocalReject(t *testing.T) {
	tp, fd := newTopo(t)
	cfg := fwConfig(fd, QueueAuto)
	cfg.Hooks = []Hook{{"output", 0}}
	// No port match: the answers are steered too.
	cfg.Steer = Steer{Protocols: []string{"tcp", "udp", "icmp", "icmpv6"}}
	m := applied(t, cfg)
	reject := m.Config().Marks.Reject
	q := bindQueue(t, tp.Firewall, 0, func(k flowKey) answer {
		if k.port == 7120 {
			return repeat(reject)
		}
		return accept
	})
	for _, srv := range []netip.Addr{tp.ServerIP4, tp.ServerIP6} {
		checkRejected(t, tp, tp.Firewall, srv, 7120, 7120)
	}
	if n := q.count(flowKey{6, 7120}) + q.count(flowKey{17, 7120}); n < 4 {
		t.Fatalf("%d packets to port 7120 queued, want the SYN and the datagram of each family", n)
	}
	cs := mustCounters(t, m)
	if n := Sum(cs, "kernel answer not queued"); n < 4 {
		t.Errorf("rule \"kernel answer not queued\" counted %d packets, want a reset and an ICMP error per family", n)
	}
}
