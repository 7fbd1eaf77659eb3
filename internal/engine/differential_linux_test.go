package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
	"github.com/qguard/qguard/verdict"
)

// TestIntegrationKernelFirstDifferential compares, for random small
// policies and random UDP datagrams, user space's decision (Decide, what
// queue-all gives) with what the kernel-first table does to the datagram
// sent through a namespace: delivered, dropped or rejected (ICMP port
// unreachable). Rules mix kernel matchers with payload rules and options
// that send their packets to the queue, so both halves of the table and
// their first-match order are exercised. The seed is logged; set
// QGUARD_DIFF_SEED to replay one.
func TestIntegrationKernelFirstDifferential(t *testing.T) {
	testutil.NeedRoot(t, "namespaces, nftables, NFQUEUE")
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("QGUARD_DIFF_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	top, err := topo.NewTopology(&topo.Options{Prefix: "qgdf", ExtraClientAddrs: []netip.Addr{
		netip.MustParseAddr("198.18.1.3"), netip.MustParseAddr("2001:db8:1::3")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { top.Close() })
	for _, ip := range []string{"198.18.2.2", "2001:db8:2::2"} {
		if _, err := top.Client.Output("ping", "-n", "-q", "-c", "1", "-W", "3", ip); err != nil {
			t.Fatalf("warm-up ping %s: %v", ip, err)
		}
	}
	// Rejects answer with ICMP errors, which the kernel rate-limits per
	// destination; every probe must see its own.
	for _, kv := range []string{"net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0",
		"net.ipv4.icmp_msgs_per_sec=100000", "net.ipv4.icmp_msgs_burst=100000"} {
		if err := top.Firewall.Run("sysctl", "-qw", kv); err != nil {
			t.Fatalf("sysctl %s: %v", kv, err)
		}
	}
	sink := newIDSink(t, top.Server)
	var ifs [2]uint32
	if err := top.Firewall.Do(func() error {
		for i, n := range []string{"fw-c", "fw-s"} {
			ifi, err := net.InterfaceByName(n)
			if err != nil {
				return err
			}
			ifs[i] = uint32(ifi.Index)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	const policies, packets = 10, 16
	id, differ := 0, 0
	for p := range policies {
		yaml := randomPolicy(rng)
		cfg, err := config.Parse("diff.yaml", []byte(yaml))
		if err != nil {
			t.Fatalf("policy %d:\n%s\n%v", p, yaml, err)
		}
		var e *Engine
		if err := top.Firewall.Do(func() (err error) {
			e, err = New(cfg, &Options{NoXDP: true, Queue: &QueueRange{Num: 0, Count: 1},
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := e.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		for range packets {
			id++
			pk := randomPacket(rng, id)
			var d verdict.Decision
			e.Decide(pk.raw(), &verdict.Meta{InIf: ifs[0], OutIf: ifs[1]}, &d)
			want := d.Action
			got := sendProbe(t, top.Client, sink, pk)
			if got != want {
				differ++
				t.Errorf("policy %d, packet %s: user space %v (rule %s), the kernel-first table %v\n%s\n%s",
					p, pk, want, e.gen.Load().compiled.RuleName(d.Rule), got, yaml, ruleset(top.Firewall))
			}
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d policies, %d datagrams, %d differences", policies, id, differ)
}

func ruleset(ns topo.NS) string {
	out, _ := ns.Output("nft", "list", "table", "inet", "qguard")
	return out
}

var (
	diffSrc4 = []string{"198.18.1.2", "198.18.1.3"}
	diffSrc6 = []string{"2001:db8:1::2", "2001:db8:1::3"}
)

// randomPolicy writes a policy of 1-6 rules over ports 7000-7007.
func randomPolicy(rng *rand.Rand) string {
	actions := []string{"accept", "drop", "reject"}
	var b strings.Builder
	fmt.Fprintf(&b, "policy:\n  default: %s\n  rules:\n", actions[rng.IntN(3)])
	for i := range 1 + rng.IntN(6) {
		var m []string
		switch rng.IntN(10) {
		case 0:
			m = append(m, "family: 4")
		case 1:
			m = append(m, "family: 6")
		}
		switch rng.IntN(10) {
		case 0, 1, 2, 3, 4:
			m = append(m, "proto: udp")
		case 5:
			m = append(m, "proto: tcp")
		}
		switch rng.IntN(6) {
		case 0:
			m = append(m, `src: ["198.18.1.3/32"]`)
		case 1:
			m = append(m, `src: ["2001:db8:1::3/128"]`)
		case 2:
			m = append(m, `src: ["198.18.1.2/32", "2001:db8:1::2/128"]`)
		}
		switch rng.IntN(4) {
		case 0:
			m = append(m, fmt.Sprintf("dport: [%d]", 7000+rng.IntN(8)))
		case 1:
			a := 7000 + rng.IntN(8)
			m = append(m, fmt.Sprintf(`dport: ["%d-%d"]`, a, a+rng.IntN(4)))
		case 2:
			m = append(m, fmt.Sprintf("dport: [%d, %d]", 7000+rng.IntN(8), 7000+rng.IntN(8)))
		}
		if rng.IntN(5) == 0 {
			a := 40000 + 80*rng.IntN(2)
			m = append(m, fmt.Sprintf(`sport: ["%d-%d"]`, a, a+79))
		}
		if rng.IntN(4) == 0 {
			m = append(m, `payload: ["secret"]`)
		}
		fmt.Fprintf(&b, "    - name: r%d\n      match: {%s}\n      action: %s\n", i, strings.Join(m, ", "), actions[rng.IntN(3)])
		if rng.IntN(8) == 0 {
			b.WriteString("      log: true\n")
		}
	}
	return b.String()
}

type diffPacket struct {
	src, dst netip.AddrPort
	payload  string
}

func (p diffPacket) String() string {
	return fmt.Sprintf("udp %v -> %v %q", p.src, p.dst, p.payload)
}

// randomPacket picks a source and port; sport 40000+id keeps every
// datagram its own conntrack entry.
func randomPacket(rng *rand.Rand, id int) diffPacket {
	src, dst := diffSrc4[rng.IntN(2)], "198.18.2.2"
	if rng.IntN(2) == 0 {
		src, dst = diffSrc6[rng.IntN(2)], "2001:db8:2::2"
	}
	word := "hello"
	if rng.IntN(3) == 0 {
		word = "secret"
	}
	return diffPacket{
		src:     netip.AddrPortFrom(netip.MustParseAddr(src), uint16(40000+id)),
		dst:     netip.AddrPortFrom(netip.MustParseAddr(dst), uint16(7000+rng.IntN(8))),
		payload: fmt.Sprintf("%s-%d", word, id),
	}
}

// raw builds the datagram as the firewall sees it.
func (p diffPacket) raw() []byte {
	udp := make([]byte, 8, 8+len(p.payload))
	binary.BigEndian.PutUint16(udp[0:], p.src.Port())
	binary.BigEndian.PutUint16(udp[2:], p.dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(p.payload)))
	udp = append(udp, p.payload...)
	if p.src.Addr().Is4() {
		ip := make([]byte, 20)
		ip[0], ip[8], ip[9] = 0x45, 63, 17
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
		s, d := p.src.Addr().As4(), p.dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		return append(ip, udp...)
	}
	ip := make([]byte, 40)
	ip[0], ip[6], ip[7] = 0x60, 17, 63
	binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)))
	s, d := p.src.Addr().As16(), p.dst.Addr().As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	return append(ip, udp...)
}

// idSink records the payloads that reach ports 7000-7007 of the server.
type idSink struct {
	mu   sync.Mutex
	seen map[string]bool
}

func newIDSink(t *testing.T, ns topo.NS) *idSink {
	s := &idSink{seen: map[string]bool{}}
	for port := 7000; port < 7008; port++ {
		var pc net.PacketConn
		if err := ns.Do(func() (err error) {
			pc, err = net.ListenPacket("udp", fmt.Sprintf("[::]:%d", port))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 256)
			for {
				n, _, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				s.mu.Lock()
				s.seen[string(buf[:n])] = true
				s.mu.Unlock()
			}
		}()
	}
	return s
}

func (s *idSink) has(p string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[p]
}

// sendProbe sends p from the client and says what happened to it:
// delivered (accept), an ICMP port unreachable came back (reject), or
// neither within 200ms (drop).
func sendProbe(t *testing.T, ns topo.NS, sink *idSink, p diffPacket) verdict.Action {
	t.Helper()
	var c *net.UDPConn
	if err := ns.Do(func() (err error) {
		c, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(p.src), net.UDPAddrFromAddrPort(p.dst))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(p.payload)); err != nil {
		t.Fatalf("send %s: %v", p, err)
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	buf := make([]byte, 64)
	for time.Now().Before(deadline) {
		if sink.has(p.payload) {
			return verdict.ActionAccept
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := c.Read(buf); errors.Is(err, syscall.ECONNREFUSED) {
			return verdict.ActionReject
		}
	}
	if sink.has(p.payload) {
		return verdict.ActionAccept
	}
	return verdict.ActionDrop
}
