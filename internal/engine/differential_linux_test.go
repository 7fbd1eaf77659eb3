package engine

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/internal/pktbuild"
	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
	"github.com/qguard/qguard/verdict"
	"github.com/qguard/qguard/verdict/packet"
)

// TestIntegrationKernelFirstDifferential compares, for random small
// policies and random packets, user space's decision (Decide, what
// queue-all gives) with what the kernel-first table does to the same
// traffic sent through a namespace. The traffic: UDP datagrams, TCP
// connections (the SYN's fate: connected, refused by a reset, or nothing;
// then, connected, the fate of one data segment: received, reset, or
// nothing) and ICMP/ICMPv6 echo requests (a reply, an unreachable from a
// reject, or nothing), over IPv4 and IPv6. Rules mix kernel matchers with
// payload rules and options that send their packets to the queue, and
// options the kernel runs itself (log, rate_limit with a bucket no probe
// empties), so both halves of the table and their first-match order are
// exercised. Each
// probe is its own flow and conntrack entry (its own source port or echo
// id), so the probes of a policy run at once. The seed is logged; set
// QGUARD_DIFF_SEED to replay one.
func TestIntegrationKernelFirstDifferential(t *testing.T) {
	testutil.NeedRoot(t, "namespaces, nftables, NFQUEUE")
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("QGUARD_DIFF_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (QGUARD_DIFF_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	top := testutil.NewTopology(t, &topo.Options{Prefix: "qgdf", ExtraClientAddrs: []netip.Addr{
		netip.MustParseAddr("198.18.1.3"), netip.MustParseAddr("2001:db8:1::3")}})
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
	const policies, packets = 10, 24
	id, differ := 0, 0
	kinds := map[diffKind]int{}
	for p := range policies {
		yaml := randomPolicy(rng)
		cfg, err := config.Parse("diff.yaml", []byte(yaml))
		if err != nil {
			t.Fatalf("policy %d:\n%s\n%v", p, yaml, err)
		}
		e := startEngine(t, top.Firewall, cfg, &Options{NoXDP: true, Queue: &QueueRange{Num: 0, Count: 1},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		pks := make([]diffPacket, packets)
		want := make([]diffOutcome, packets)
		for i := range pks {
			id++
			pks[i] = randomPacket(rng, id)
			kinds[pks[i].kind]++
			want[i] = userOutcome(e, pks[i], &verdict.Meta{InIf: ifs[0], OutIf: ifs[1]})
		}
		got := make([]diffOutcome, packets)
		var wg sync.WaitGroup
		for i := range pks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i] = sendProbe(t, top.Client, sink, pks[i])
			}()
		}
		wg.Wait()
		for i := range pks {
			if got[i].first != want[i].first || got[i].data != want[i].data {
				differ++
				t.Errorf("policy %d, %s: user space %v (rule %s), the kernel-first table %v\n%s",
					p, pks[i], want[i], e.gen.Load().compiled.RuleName(want[i].rule), got[i].String(), yaml)
			}
		}
		if t.Failed() && differ > 0 && differ < 4 {
			t.Logf("ruleset of policy %d:\n%s", p, ruleset(top.Firewall))
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d policies, %d probes (udp %d, tcp %d, icmp %d), %d differences",
		policies, id, kinds[diffUDP], kinds[diffTCP], kinds[diffICMP], differ)
}

func ruleset(ns topo.NS) string {
	out, _ := ns.Output("nft", "list", "table", "inet", "qguard")
	return out
}

var (
	diffSrc4 = []string{"198.18.1.2", "198.18.1.3"}
	diffSrc6 = []string{"2001:db8:1::2", "2001:db8:1::3"}
)

// randomPolicy writes a policy of 1-6 rules over ports 7000-7007 and the
// protocols UDP, TCP, ICMP and ICMPv6.
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
		switch rng.IntN(12) {
		case 0, 1, 2:
			m = append(m, "proto: udp")
		case 3, 4, 5:
			m = append(m, "proto: tcp")
		case 6:
			m = append(m, "proto: icmp")
		case 7:
			m = append(m, "proto: icmpv6")
		case 8:
			m = append(m, "proto: [tcp, udp]")
		}
		switch rng.IntN(6) {
		case 0:
			m = append(m, `src: ["198.18.1.3/32"]`)
		case 1:
			m = append(m, `src: ["2001:db8:1::3/128"]`)
		case 2:
			m = append(m, `src: ["198.18.1.2/32", "2001:db8:1::2/128"]`)
		}
		switch rng.IntN(5) {
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
		action := actions[rng.IntN(3)]
		fmt.Fprintf(&b, "    - name: r%d\n      match: {%s}\n      action: %s\n", i, strings.Join(m, ", "), action)
		switch n := rng.IntN(8); {
		case n == 0:
			b.WriteString("      log: true\n")
		case n <= 2 && action != "reject":
			// A bucket no probe empties (user space's Decide and the
			// kernel count different packets): the rate chains' first
			// match, both directions and every protocol are what is
			// compared, not the limit.
			fmt.Fprintf(&b, "      rate_limit: {rate: 1000/s, burst: 100000, key: %s}\n", []string{"rule", "source", "flow"}[rng.IntN(3)])
		}
	}
	return b.String()
}

type diffKind uint8

const (
	diffUDP diffKind = iota
	diffTCP
	diffICMP
)

type diffPacket struct {
	kind     diffKind
	src, dst netip.AddrPort // ports 0 for ICMP
	echoID   uint16
	payload  string
}

func (p diffPacket) String() string {
	switch p.kind {
	case diffTCP:
		return fmt.Sprintf("tcp %v -> %v, then %q", p.src, p.dst, p.payload)
	case diffICMP:
		return fmt.Sprintf("icmp echo %v -> %v id %d", p.src.Addr(), p.dst.Addr(), p.echoID)
	}
	return fmt.Sprintf("udp %v -> %v %q", p.src, p.dst, p.payload)
}

// randomPacket picks a kind, a source and a port; sport 40000+id (echo id
// 1000+id) keeps every probe its own conntrack entry.
func randomPacket(rng *rand.Rand, id int) diffPacket {
	src, dst := diffSrc4[rng.IntN(2)], "198.18.2.2"
	if rng.IntN(2) == 0 {
		src, dst = diffSrc6[rng.IntN(2)], "2001:db8:2::2"
	}
	word := "hello"
	if rng.IntN(3) == 0 {
		word = "secret"
	}
	p := diffPacket{
		src:     netip.AddrPortFrom(netip.MustParseAddr(src), uint16(40000+id)),
		dst:     netip.AddrPortFrom(netip.MustParseAddr(dst), uint16(7000+rng.IntN(8))),
		payload: fmt.Sprintf("%s-%d", word, id),
	}
	switch n := rng.IntN(20); {
	case n < 7:
		p.kind = diffTCP
	case n < 12:
		p.kind = diffICMP
		p.src, p.dst = netip.AddrPortFrom(p.src.Addr(), 0), netip.AddrPortFrom(p.dst.Addr(), 0)
		p.echoID = uint16(1000 + id)
	}
	return p
}

// diffOutcome is what happened to a probe: the action its first packet
// met, and for a TCP connection that was accepted, the action its data
// segment met.
type diffOutcome struct {
	first, data verdict.Action
	rule        int // user space's deciding rule (not compared)
}

func (o diffOutcome) String() string {
	if o.data == verdict.ActionUnset {
		return o.first.String()
	}
	return fmt.Sprintf("%v, data %v", o.first, o.data)
}

// userOutcome is user space's decision for the probe's packets in order:
// the SYN (a pending decision lets it pass) and, accepted, the first data
// segment; the datagram; the echo request.
func userOutcome(e *Engine, p diffPacket, m *verdict.Meta) diffOutcome {
	var d verdict.Decision
	e.Decide(p.raw(false), m, &d)
	o := diffOutcome{first: d.Action, rule: d.Rule}
	if p.kind != diffTCP || d.Action != verdict.ActionAccept {
		return o
	}
	e.Decide(p.raw(true), m, &d)
	o.data, o.rule = d.Action, d.Rule
	return o
}

// raw builds the probe's packet as the firewall sees it: for TCP the SYN
// (ISN 1000), or with data the first data segment (seq 1001).
func (p diffPacket) raw(data bool) []byte {
	var l4 []byte
	var proto uint8
	switch p.kind {
	case diffUDP:
		l4, proto = pktbuild.UDP(p.src.Port(), p.dst.Port(), []byte(p.payload)), packet.ProtoUDP
	case diffTCP:
		proto = packet.ProtoTCP
		if !data {
			l4 = pktbuild.TCP(p.src.Port(), p.dst.Port(), packet.TCPSyn, nil, nil)
			binary.BigEndian.PutUint32(l4[8:], 0) // no ack number on a SYN
		} else {
			l4 = pktbuild.TCP(p.src.Port(), p.dst.Port(), packet.TCPAck|packet.TCPPsh, nil, []byte(p.payload))
			binary.BigEndian.PutUint32(l4[4:], 1001)
		}
	case diffICMP:
		typ := uint8(8) // echo request
		proto = packet.ProtoICMP
		if p.src.Addr().Is6() {
			typ, proto = 128, packet.ProtoICMPv6
		}
		l4 = pktbuild.ICMP(typ, 0, p.echoID, 1, []byte(p.payload))
	}
	if p.src.Addr().Is4() {
		return pktbuild.IPv4{Proto: proto, Src: p.src.Addr(), Dst: p.dst.Addr(), TTL: 63}.Build(l4)
	}
	return pktbuild.IPv6{Proto: proto, Src: p.src.Addr(), Dst: p.dst.Addr(), Hop: 63}.Build(l4)
}
