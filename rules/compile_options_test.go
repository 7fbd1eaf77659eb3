package rules

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var withOptions = Capabilities{CompatQueue: true, NativeErr: "test", Log: true, Limit: true, Meter: true}

// TestGoldenKernelOptions checks the netlink attributes of the options'
// expressions against linux/netfilter/nf_tables.h: the log rule's limit
// and nflog log, block_source's dynset into block4 and a source rate
// limit's dynset with its limit, and that the rate rule's chain is added
// before the policy chain that jumps to it.
func TestGoldenKernelOptions(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode, cfg.Policy = KernelFirst, &Policy{Default: ActionAccept, LogRate: 7, Rules: []PolicyRule{
		{Name: "logged", Protos: []uint8{17}, Action: ActionAccept, Log: true},
		{Name: "blocks", Protos: []uint8{6}, Family: 4, Action: ActionDrop, BlockSource: 90 * time.Second},
		{Name: "limited", Protos: []uint8{17}, Action: ActionAccept,
			RateLimit: &RateLimit{Rate: 30, Unit: time.Minute, Burst: 4, Key: RateBySource, Exceed: ActionDrop}},
	}}
	_, f := applyFake(t, cfg, withOptions)
	rs := rulesOf(t, f.msgs)
	var logged, blocks, limited []goldenRule
	for _, r := range rs {
		switch {
		case r.comment == "qguard: rule logged" && r.chain == "forward_policy_g1":
			logged = append(logged, r)
		case r.comment == "qguard: rule blocks":
			blocks = append(blocks, r)
		case r.comment == "qguard: rule limited" && r.chain == "rl_2_g1":
			limited = append(limited, r)
		}
	}
	if len(logged) != 2 || len(blocks) != 1 || len(limited) != 4 {
		t.Fatalf("rules: %d logged (want the log rule and the accept), %d blocks, %d in the rate chain", len(logged), len(blocks), len(limited))
	}
	lim := attrs(t, exprData(t, logged[0], "limit", 0))
	if !bytes.Equal(lim[unix.NFTA_LIMIT_RATE], bu64(7)) || !bytes.Equal(lim[unix.NFTA_LIMIT_UNIT], bu64(1)) ||
		!bytes.Equal(lim[unix.NFTA_LIMIT_BURST], bu32(7)) || !bytes.Equal(lim[unix.NFTA_LIMIT_TYPE], bu32(unix.NFT_LIMIT_PKTS)) {
		t.Errorf("log limit: %x", lim)
	}
	lg := attrs(t, exprData(t, logged[0], "log", 0))
	if !bytes.Equal(lg[unix.NFTA_LOG_GROUP], []byte{0x1b, 0xff}) || // 7167, big-endian u16
		string(lg[unix.NFTA_LOG_PREFIX]) != "qguard accept logged\x00" || !bytes.Equal(lg[unix.NFTA_LOG_SNAPLEN], bu32(128)) {
		t.Errorf("log: %x", lg)
	}
	ds := attrs(t, exprData(t, blocks[0], "dynset", 0))
	if string(ds[unix.NFTA_DYNSET_SET_NAME]) != "block4\x00" || !bytes.Equal(ds[unix.NFTA_DYNSET_OP], bu32(unix.NFT_DYNSET_OP_ADD)) ||
		!bytes.Equal(ds[unix.NFTA_DYNSET_TIMEOUT], bu64(90000)) {
		t.Errorf("block dynset: %x", ds)
	}
	// The rate chain: the connection into its set, then v4 and v6 buckets,
	// then the exceed action.
	rd := attrs(t, exprData(t, limited[1], "dynset", 0))
	if string(rd[unix.NFTA_DYNSET_SET_NAME]) != "rl_2_s4_g1\x00" || !bytes.Equal(rd[unix.NFTA_DYNSET_OP], bu32(unix.NFT_DYNSET_OP_UPDATE)) {
		t.Errorf("rate dynset: %x", rd)
	}
	inner := rd[unix.NFTA_DYNSET_EXPR]
	if !bytes.Contains(inner, []byte("limit\x00")) || !bytes.Contains(inner, nla(unix.NFTA_LIMIT_UNIT, bu64(60))) ||
		!bytes.Contains(inner, nla(unix.NFTA_LIMIT_RATE, bu64(30))) || !bytes.Contains(inner, nla(unix.NFTA_LIMIT_BURST, bu32(4))) {
		t.Errorf("rate dynset's limit: %x", inner)
	}
	// Chains are created before the rules that jump to them.
	order := strings.Join(chainsAdded(t, f), " ")
	if i, j := strings.Index(order, "rl_2_g1"), strings.Index(order, "forward_policy_g1"); i < 0 || j < 0 || i > j {
		t.Errorf("chains added in the order %s", order)
	}
}

// TestKernelOptionsFallback: without the expressions the probe looks for,
// the rules with the options are queued, saying why.
func TestKernelOptionsFallback(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode, cfg.Policy = KernelFirst, &Policy{Default: ActionAccept, Rules: []PolicyRule{
		{Name: "logged", Action: ActionAccept, Log: true},
		{Name: "limited", Action: ActionAccept, RateLimit: &RateLimit{Rate: 1, Unit: time.Second, Burst: 1, Key: RateByRule, Exceed: ActionDrop}},
	}}
	_, f := applyFake(t, cfg, Capabilities{CompatQueue: true, NativeErr: "test", LogErr: "ENOENT", MeterErr: "ENOENT"})
	var notes []string
	for _, r := range rulesOf(t, f.msgs) {
		if r.chain == "forward_policy_g1" {
			notes = append(notes, r.comment)
		}
	}
	want := []string{"qguard: rule logged -> queue: log option (no nft log with limit in this kernel: ENOENT)",
		"qguard: rule limited -> queue: rate_limit (no nft meters in this kernel: ENOENT)", "qguard: default"}
	if strings.Join(notes, "\n") != strings.Join(want, "\n") {
		t.Errorf("policy chain:\n%s\nwant:\n%s", strings.Join(notes, "\n"), strings.Join(want, "\n"))
	}
}

func TestRateFlowMark(t *testing.T) {
	for _, c := range []struct {
		m    Marks
		want uint32
		ok   bool
	}{
		{DefaultMarks, 0x00040000, true},
		{Marks{Mask: 0x3, AcceptFlow: 1, DropFlow: 2, Reject: 3}, 0, false},
		{Marks{Mask: 0x5, AcceptFlow: 1, DropFlow: 4, Reject: 5}, 0, false},
		{Marks{Mask: 0xf0, AcceptFlow: 0x10, DropFlow: 0x30, Reject: 0x40}, 0x20, true},
	} {
		if got, ok := rateFlowMark(c.m); got != c.want || ok != c.ok {
			t.Errorf("%+v: %#x %v, want %#x %v", c.m, got, ok, c.want, c.ok)
		}
	}
}

// chainsAdded lists the chains f's messages add, in order.
func chainsAdded(t *testing.T, f *fakeKernel) []string {
	var out []string
	for _, m := range f.msgs {
		if msgType(m) == unix.NFT_MSG_NEWCHAIN {
			a := attrs(t, m.Data[4:])
			out = append(out, strings.TrimRight(string(a[unix.NFTA_CHAIN_NAME]), "\x00"))
		}
	}
	return out
}
