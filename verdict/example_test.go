package verdict_test

import (
	"fmt"
	"net/netip"

	"github.com/qguard/qguard/verdict"

	"github.com/qguard/qguard/verdict/packet"
)

// portKnock is a user stage: it drops TCP packets to port 2222 unless the
// source is on its allow list, and passes everything else on to the rules.
type portKnock struct {
	allowed map[netip.Addr]bool
}

func (portKnock) Name() string { return "port-knock" }

func (s portKnock) Decide(c *verdict.Context, d *verdict.Decision) bool {
	p := c.Packet
	if p.Proto != packet.ProtoTCP || p.DstPort != 2222 || s.allowed[p.Src] {
		return false
	}
	d.Action = verdict.ActionDrop
	return true
}

func ExamplePipeline_Use() {
	c, err := verdict.Compile(&verdict.Policy{Default: verdict.ActionAccept})
	if err != nil {
		panic(err)
	}
	p := verdict.NewPipeline(c, nil)
	p.Use(portKnock{allowed: map[netip.Addr]bool{netip.MustParseAddr("198.18.1.2"): true}})

	var d verdict.Decision
	for _, src := range []string{"198.18.1.2", "198.18.1.3"} {
		p.Decide(tcpSYN(src, "198.18.2.2", 40000, 2222), &verdict.Meta{}, &d)
		fmt.Printf("%s: %s (rule %s, stage %q)\n", src, d.Action, c.RuleName(d.Rule), d.Stage)
	}
	// Output:
	// 198.18.1.2: accept (rule (default), stage "")
	// 198.18.1.3: drop (rule (stage), stage "port-knock")
}

// tcpSYN builds an IPv4 TCP SYN.
func tcpSYN(src, dst string, sport, dport uint16) []byte {
	b := make([]byte, 40)
	b[0], b[3], b[8], b[9] = 0x45, 40, 64, packet.ProtoTCP
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	b[20], b[21], b[22], b[23] = byte(sport>>8), byte(sport), byte(dport>>8), byte(dport)
	b[32], b[33] = 5<<4, packet.TCPSyn
	return b
}
