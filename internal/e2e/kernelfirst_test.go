package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/topo"
)

// kernelFirstPolicy decides UDP 9002 and TCP 9000 on ports alone (in the
// kernel in mode kernel-first) and DNS names in user space.
const kernelFirstPolicy = `
policy:
  default: accept
  rules:
    - name: udp-9002-drop
      match: {proto: udp, dport: [9002]}
      action: drop
    - name: echo-accept
      match: {proto: tcp, dport: [9000]}
      action: accept
    - name: no-blocked-names
      match: {dns: ["blocked.example"]}
      action: drop
`

const kernelFirstFailClosed = `
queue: {fail_open: false, default_verdict: drop}
rules: {bypass: false}
`

// sink counts the datagrams from other namespaces that reach a UDP port in
// the server namespace.
type sink struct {
	ns    topo.NS
	port  int
	n     atomic.Int64
	marks chan struct{} // one per marker datagram read (sent from loopback)
}

// udpSink starts a sink on port in the server namespace.
func udpSink(t *testing.T, top *topo.Topology, port int) *sink {
	t.Helper()
	s := &sink{ns: top.Server, port: port, marks: make(chan struct{}, 1)}
	pc := listenPacketIn(t, top.Server, "udp", fmt.Sprintf("[::]:%d", port))
	// 8 MiB (forced past rmem_max): on a busy machine the reader can be
	// starved for tens of milliseconds, and the default 208 KiB holds only a
	// few milliseconds of these bursts (a CI run lost 61 of 2,001 this way).
	forceRcvBuf(t, pc, 8<<20)
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if a, ok := from.(*net.UDPAddr); ok && a.IP.IsLoopback() {
				s.marks <- struct{}{}
				continue
			}
			s.n.Add(1)
		}
	}()
	return s
}

// count returns what the sink has read of everything sent to it so far: it
// waits (up to a deadline) for want datagrams, then sends a marker from
// the server namespace's loopback behind them and waits for the reader to
// reach it, so datagrams still in the socket's buffer are counted, and
// ones beyond want too. Waiting for the count to stop changing instead
// returns early whenever the reader is not scheduled for that long.
func (s *sink) count(t *testing.T, want int64) int64 {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.n.Load() < want && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	err := s.ns.Do(func() error {
		c, err := net.Dial("udp", fmt.Sprintf("[::1]:%d", s.port))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("mark"))
		return err
	})
	if err != nil {
		t.Fatalf("sink marker: %v", err)
	}
	select {
	case <-s.marks:
	case <-time.After(10 * time.Second):
		t.Fatalf("sink on port %d did not read its marker in 10s", s.port)
	}
	return s.n.Load()
}

// sendUDP sends n datagrams from the client to addr, paced so that none is
// lost to a full socket buffer.
func sendUDP(t *testing.T, top *topo.Topology, addr string, n int) {
	t.Helper()
	c, err := dialIn(top.Client, "udp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range n {
		_, _ = c.Write([]byte("x"))
		if i%50 == 49 {
			time.Sleep(time.Millisecond)
		}
	}
}

// TestIntegrationPolicyOutlivesDaemon: in mode kernel-first the kernel's
// part of the policy holds after SIGKILL, under traffic: the UDP/9002 drop
// rule still drops everything, an established TCP flow and new ones the
// kernel accepts keep flowing, and only DNS, which the policy sends to the
// queue, follows fail-open (bypass) or fail-closed.
func TestIntegrationPolicyOutlivesDaemon(t *testing.T) {
	top := newTopo(t, "qeko")
	servers(t, top)
	dropped := udpSink(t, top, 9002)
	allowed := udpSink(t, top, 9003)
	for _, tc := range []struct {
		name, yaml string
		dnsAfter   bool
	}{{"fail-open", kernelFirstPolicy, true}, {"fail-closed", kernelFirstFailClosed + kernelFirstPolicy, false}} {
		t.Run(tc.name, func(t *testing.T) {
			dropped.n.Store(0)
			allowed.n.Store(0)
			d := startDaemon(t, top, tc.yaml)
			if _, err := dnsQuery(top.Client, top.ServerIP4, "ok.example"); err != nil {
				t.Fatalf("dns while running: %v", err)
			}
			c, err := dialIn(top.Client, "tcp", hostPort(top.ServerIP4, portEcho), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := echo(c, "before"); err != nil {
				t.Fatal(err)
			}
			// Resolve the IPv6 neighbours first: datagrams that find a
			// neighbour unresolved wait in its small queue (unres_qlen_bytes)
			// and a busy machine can overflow it before the answer comes.
			if err := ping(top.Client, top.ServerIP6.String(), 1); err != nil {
				t.Fatalf("ping6 while running: %v", err)
			}
			neigh := neighDiscards(t)
			// Traffic while the daemon dies: 2 x 1001 datagrams, half to the
			// dropped port, half to an allowed one.
			done := make(chan struct{})
			var sendErr error
			go func() {
				defer close(done)
				for range 1001 {
					err1 := sendUDPOnce(top, hostPort(top.ServerIP4, 9002))
					err2 := sendUDPOnce(top, hostPort(top.ServerIP6, 9003))
					if err := errors.Join(err1, err2); err != nil && sendErr == nil {
						sendErr = err
					}
				}
			}()
			time.Sleep(5 * time.Millisecond)
			d.signal(syscall.SIGKILL)
			_ = d.wait(5 * time.Second)
			<-done
			if sendErr != nil {
				t.Fatalf("send under SIGKILL: %v", sendErr)
			}
			sendUDP(t, top, hostPort(top.ServerIP6, 9002), 1000)
			sendUDP(t, top, hostPort(top.ServerIP4, 9003), 1000)
			gotAllow := allowed.count(t, 2001)
			gotDrop := dropped.count(t, 0)
			t.Logf("%s: after SIGKILL under traffic: %d of 2001 datagrams to the dropped port arrived, %d of 2001 to an allowed port",
				tc.name, gotDrop, gotAllow)
			if gotDrop != 0 {
				t.Errorf("%d datagrams to udp/9002 passed the drop rule", gotDrop)
			}
			if gotAllow != 2001 {
				t.Errorf("%d of 2001 datagrams to udp/9003 arrived; want all (%s; unresolved-neighbour discards (machine) %d)",
					gotAllow, udpLossDiag(t, top), neighDiscards(t)-neigh)
			}
			if err := echo(c, "after"); err != nil {
				t.Errorf("established flow after SIGKILL: %v", err)
			}
			if err := dialFrom(top.Client, top.ClientIP6.String(), hostPort(top.ServerIP6, portEcho)); err != nil {
				t.Errorf("new connection to the accepted port after SIGKILL: %v", err)
			}
			if err := ping(top.Client, top.ServerIP4.String(), 1); err != nil {
				t.Errorf("ping (policy default accept) after SIGKILL: %v", err)
			}
			_, err = dnsQuery(top.Client, top.ServerIP4, "ok.example")
			if tc.dnsAfter && err != nil {
				t.Errorf("dns (queued) after SIGKILL with bypass: %v", err)
			}
			if !tc.dnsAfter && err == nil {
				t.Error("dns (queued) passed after SIGKILL without bypass")
			}
			if err := top.Firewall.Run("nft", "delete", "table", "inet", "qguard"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// sendUDPOnce sends one datagram from the client to addr.
func sendUDPOnce(top *topo.Topology, addr string) error {
	return top.Client.Do(func() error {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("x"))
		return err
	})
}

// TestIntegrationKernelFirstQueuesOnlyL7 counts what reaches the queue for
// the same traffic in both modes: in kernel-first, packets that no L7 rule
// can match are decided in the kernel (the queue sees none of them), with
// the same outcome as in queue-all; DNS, which the dns rule needs, is queued.
func TestIntegrationKernelFirstQueuesOnlyL7(t *testing.T) {
	top := newTopo(t, "qekq")
	servers(t, top)
	dropped := udpSink(t, top, 9002)
	allowed := udpSink(t, top, 9003)
	for _, mode := range []string{"kernel-first", "queue-all"} {
		t.Run(mode, func(t *testing.T) {
			dropped.n.Store(0)
			allowed.n.Store(0)
			d := startDaemon(t, top, "rules: {mode: "+mode+"}\n"+kernelFirstPolicy)
			sendUDP(t, top, hostPort(top.ServerIP4, 9002), 500)
			sendUDP(t, top, hostPort(top.ServerIP6, 9002), 500)
			sendUDP(t, top, hostPort(top.ServerIP4, 9003), 500)
			sendUDP(t, top, hostPort(top.ServerIP6, 9003), 500)
			c, err := dialIn(top.Client, "tcp", hostPort(top.ServerIP4, portEcho), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 20 {
				if err := echo(c, fmt.Sprint(i)); err != nil {
					t.Fatal(err)
				}
			}
			c.Close()
			if err := ping(top.Client, top.ServerIP6.String(), 3); err != nil {
				t.Errorf("ping: %v", err)
			}
			gotAllow := allowed.count(t, 1000)
			gotDrop := dropped.count(t, 0)
			if gotDrop != 0 || gotAllow != 1000 {
				t.Errorf("%d of 1000 datagrams to the dropped port arrived, %d of 1000 to the allowed one (%s)",
					gotDrop, gotAllow, udpLossDiag(t, top))
			}
			l34 := d.status().Queues[0].Packets
			if _, err := dnsQuery(top.Client, top.ServerIP4, "ok.example"); err != nil {
				t.Errorf("dns ok.example: %v", err)
			}
			if _, err := dnsQuery(top.Client, top.ServerIP4, "blocked.example"); err == nil {
				t.Error("dns blocked.example was answered")
			}
			st := d.status()
			withDNS := st.Queues[0].Packets
			hits := map[string]uint64{}
			for _, r := range st.Rules {
				hits[r.Name] = r.Hits
			}
			t.Logf("%s: %d packets queued for 2000 datagrams, 20 echoes and 3 pings (%.1f per 1,000); %d after 2 DNS queries; hits %v",
				mode, l34, float64(l34)*1000/2000, withDNS, hits)
			if mode == "kernel-first" && l34 != 0 {
				t.Errorf("kernel-first queued %d packets that no L7 rule can match", l34)
			}
			if mode == "queue-all" && l34 < 2000 {
				t.Errorf("queue-all queued only %d packets", l34)
			}
			if withDNS == l34 {
				t.Error("the DNS queries were not queued")
			}
			// One number per rule wherever it was decided: every datagram to
			// 9002 was a first packet of its flow or cached in user space.
			if hits["udp-9002-drop"] < 2 || hits["echo-accept"] < 1 || hits["no-blocked-names"] < 1 {
				t.Errorf("rule hits %v", hits)
			}
			d.signal(syscall.SIGTERM)
			_ = d.wait(10 * time.Second)
		})
	}
}

// TestIntegrationKernelFirstReloadLosesNothing: in mode kernel-first the
// policy chain is part of each rules generation, so a reload switches it
// with the rest, leaving no moment without a policy. A stream of new UDP
// flows (one datagram each, a new source port each, so every one is
// decided in the policy chain) to the port the policy accepts loses
// nothing across three reloads that reorder the rules and change a set.
func TestIntegrationKernelFirstReloadLosesNothing(t *testing.T) {
	top := newTopo(t, "qekr")
	policy := func(i int) string { return strings.Replace(lossPolicy(i), "mode: queue-all", "mode: kernel-first", 1) }
	d := startDaemon(t, top, policy(0))
	sink := listenPacketIn(t, top.Server, "udp4", fmt.Sprintf(":%d", portUDPSink))
	forceRcvBuf(t, sink, 32<<20)
	var mu sync.Mutex
	seen := map[uint32]bool{}
	go func() {
		buf := make([]byte, 16)
		for {
			n, _, err := sink.ReadFrom(buf)
			if err != nil {
				return
			}
			if n == 4 {
				mu.Lock()
				seen[binary.BigEndian.Uint32(buf)] = true
				mu.Unlock()
			}
		}
	}()
	var sent atomic.Uint32
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- top.Client.Do(func() error {
			dst := hostPort(top.ServerIP4, portUDPSink)
			for i := uint32(0); i < 20000; i++ {
				select {
				case <-stop:
					return nil
				default:
				}
				c, err := net.Dial("udp4", dst)
				if err != nil {
					return err
				}
				_, err = c.Write(binary.BigEndian.AppendUint32(nil, i))
				c.Close()
				if err != nil {
					return err
				}
				sent.Add(1)
				if i%20 == 19 {
					time.Sleep(time.Millisecond)
				}
			}
			return nil
		})
	}()
	time.Sleep(100 * time.Millisecond)
	for i := range 3 {
		d.writeConfig(policy(i + 1))
		if !d.reload() {
			t.Fatalf("reload %d failed:\n%s", i, d.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	n := sent.Load()
	var got int
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		got = len(seen)
		mu.Unlock()
		if got == int(n) {
			break
		}
	}
	q := d.status().Queues[0].Packets
	t.Logf("%d new flows across three reloads: %d arrived, %d queued", n, got, q)
	if got != int(n) {
		t.Errorf("%d of %d datagrams arrived", got, n)
	}
	if n < 1000 {
		t.Errorf("only %d datagrams sent", n)
	}
}

// udpLossDiag names the counters of every place a datagram can be lost
// outside qguard: the server's UDP sockets (received, buffer overruns), the
// client's sends the kernel dropped without an error (SndbufErrors), the
// links' drop counters in each namespace (/proc/net/dev) and the device
// backlogs (softnet_stat, machine-wide since boot). Counters since the
// namespaces were made, but for the backlogs.
func udpLossDiag(t *testing.T, top *topo.Topology) string {
	t.Helper()
	var b strings.Builder
	snmp := func(ns topo.NS, v4, v6 []string) {
		out4, err4 := ns.Output("cat", "/proc/net/snmp")
		out6, err6 := ns.Output("cat", "/proc/net/snmp6")
		if err := errors.Join(err4, err6); err != nil {
			fmt.Fprintf(&b, "%s: %v; ", ns.Name, err)
			return
		}
		fmt.Fprintf(&b, "%s:", ns.Name)
		for _, f := range v4 {
			fmt.Fprintf(&b, " udp %s %d", f, topo.SNMPField(out4, "Udp:", f))
		}
		for _, f := range v6 {
			for _, l := range strings.Split(out6, "\n") {
				if x := strings.Fields(l); len(x) == 2 && x[0] == "Udp6"+f {
					fmt.Fprintf(&b, " udp6 %s %s", f, x[1])
				}
			}
		}
		b.WriteString("; ")
	}
	snmp(top.Server, []string{"InDatagrams", "RcvbufErrors"}, []string{"InDatagrams", "RcvbufErrors"})
	snmp(top.Client, []string{"SndbufErrors"}, []string{"SndbufErrors"})
	for _, ns := range []topo.NS{top.Client, top.Firewall, top.Server} {
		out, err := ns.Output("cat", "/proc/net/dev")
		if err != nil {
			continue
		}
		for _, l := range strings.Split(out, "\n") {
			name, rest, ok := strings.Cut(l, ":")
			f := strings.Fields(rest)
			if !ok || len(f) < 12 || strings.TrimSpace(name) == "lo" {
				continue
			}
			fmt.Fprintf(&b, "%s/%s rx drop %s tx drop %s; ", ns.Name, strings.TrimSpace(name), f[3], f[11])
		}
	}
	fmt.Fprintf(&b, "backlog drops (machine) %d", readDrops(t, top).softnet)
	return b.String()
}

// neighDiscards sums the machine's unresolved_discards of ARP and NDISC
// over CPUs: packets dropped while waiting for a neighbour's address.
func neighDiscards(t *testing.T) uint64 {
	t.Helper()
	var n uint64
	for _, f := range []string{"/proc/net/stat/arp_cache", "/proc/net/stat/ndisc_cache"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Logf("neighbour stats: %v", err)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		col := slices.Index(strings.Fields(lines[0]), "unresolved_discards")
		for _, l := range lines[1:] {
			if x := strings.Fields(l); col >= 0 && col < len(x) {
				v, _ := strconv.ParseUint(x[col], 16, 64)
				n += v
			}
		}
	}
	return n
}
