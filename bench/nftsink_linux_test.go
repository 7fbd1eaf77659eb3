package bench

import (
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

func TestSumNFTSink(t *testing.T) {
	rule := func(proto []byte, pkts, bytes uint64) *nftables.Rule {
		return &nftables.Rule{Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: proto},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x23, 0x28}},
			&expr.Counter{Packets: pkts, Bytes: bytes},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}}
	}
	ip4, ip6 := []byte{0x08, 0x00}, []byte{0x86, 0xdd}
	p, b, err := sumNFTSink([]*nftables.Rule{rule(ip4, 10, 640), rule(ip6, 5, 320)})
	if err != nil {
		t.Fatal(err)
	}
	// 10 IPv4 packets of 64 bytes carry 36 bytes each, 5 IPv6 ones 16.
	if p != 15 || b != 10*36+5*16 {
		t.Errorf("got %d packets, %d payload bytes; want 15, %d", p, b, 10*36+5*16)
	}
	for name, bad := range map[string][]*nftables.Rule{
		"no rules":         nil,
		"one rule":         {rule(ip4, 10, 640)},
		"bytes below hdrs": {rule(ip4, 10, 100), rule(ip6, 0, 0)},
		"unknown protocol": {rule([]byte{0x08, 0x06}, 1, 64), rule(ip6, 1, 64)},
		"rule without ctr": {{Exprs: []expr.Any{&expr.Cmp{Data: ip4}}}, rule(ip6, 1, 64)},
	} {
		if _, _, err := sumNFTSink(bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
