package rules

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// The golden tests run the package against a fake kernel (the library's
// test dialer) and compare the netlink bytes of the key expressions with
// values written down from the UAPI headers and from what iptables-nft and
// nft install, not with the library's own encoder.

// fakeKernel records every message and answers like an empty kernel.
type fakeKernel struct {
	msgs []netlink.Message
	// errno, when set, fails batches that contain an expression named fail.
	errno int
	fail  string
}

func (f *fakeKernel) dial() (*nftables.Conn, error) {
	return nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if req == nil {
			return nil, io.EOF
		}
		f.msgs = append(f.msgs, req...)
		if f.errno != 0 {
			for _, m := range req {
				if bytes.Contains(m.Data, []byte(f.fail+"\x00")) {
					return nltest.Error(f.errno, []netlink.Message{m})
				}
			}
		}
		if len(req) == 1 && req[0].Header.Flags&netlink.Dump != 0 {
			return nil, nil // an empty dump: no tables yet
		}
		return req, nil
	}))
}

// nla encodes one netlink attribute with padding (header in host order),
// for expected values and the raw queue's requests.
func nla(typ uint16, data []byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func bu32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func bu64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// attrs decodes one level of attributes into type -> data (last wins).
func attrs(t *testing.T, b []byte) map[uint16][]byte {
	t.Helper()
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint16][]byte{}
	for ad.Next() {
		out[ad.Type()] = ad.Bytes()
	}
	if err := ad.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

type goldenExpr struct {
	name string
	data []byte
}

type goldenRule struct {
	chain, comment string
	exprs          []goldenExpr
}

func msgType(m netlink.Message) uint16 { return uint16(m.Header.Type) & 0xff }

// rulesOf decodes the NEWRULE messages.
func rulesOf(t *testing.T, msgs []netlink.Message) []goldenRule {
	t.Helper()
	var out []goldenRule
	for _, m := range msgs {
		if msgType(m) != unix.NFT_MSG_NEWRULE {
			continue
		}
		a := attrs(t, m.Data[4:])
		r := goldenRule{chain: strings.TrimRight(string(a[unix.NFTA_RULE_CHAIN]), "\x00")}
		if ud := a[unix.NFTA_RULE_USERDATA]; len(ud) > 2 {
			r.comment = strings.TrimRight(string(ud[2:]), "\x00")
		}
		ad, err := netlink.NewAttributeDecoder(a[unix.NFTA_RULE_EXPRESSIONS])
		if err != nil {
			t.Fatal(err)
		}
		for ad.Next() {
			e := attrs(t, ad.Bytes())
			r.exprs = append(r.exprs, goldenExpr{strings.TrimRight(string(e[unix.NFTA_EXPR_NAME]), "\x00"), e[unix.NFTA_EXPR_DATA]})
		}
		out = append(out, r)
	}
	return out
}

func findRule(t *testing.T, rs []goldenRule, comment string) goldenRule {
	t.Helper()
	for _, r := range rs {
		if r.comment == "qguard: "+comment {
			return r
		}
	}
	t.Fatalf("no rule %q", comment)
	return goldenRule{}
}

func exprData(t *testing.T, r goldenRule, name string, nth int) []byte {
	t.Helper()
	want := nth
	for _, e := range r.exprs {
		if e.name == name {
			if nth == 0 {
				return e.data
			}
			nth--
		}
	}
	t.Fatalf("rule %q has no %s expression #%d", r.comment, name, want)
	return nil
}

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// applyFake applies cfg against a fake kernel with the given capabilities.
func applyFake(t *testing.T, cfg *Config, caps Capabilities) (*Manager, *fakeKernel) {
	t.Helper()
	n, err := cfg.normalize()
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeKernel{}
	m, err := newManager(n, caps, f.dial)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(); err != nil {
		t.Fatal(err)
	}
	return m, f
}

var compatOnly = Capabilities{CompatQueue: true, NativeErr: "test"}

func TestGoldenCompatTarget(t *testing.T) {
	if !littleEndian() {
		t.Skip("golden xt_NFQ_info_v3 bytes are written for a little-endian host")
	}
	for _, tc := range []struct {
		name        string
		num, count  uint16
		bypass, fan bool
		info        string // as installed by iptables-nft on this machine
	}{
		// iptables-nft -A FORWARD -j NFQUEUE --queue-num 3 --queue-bypass
		{"num 3 bypass", 3, 1, true, false, "0300010001000000"},
		// iptables-nft -A FORWARD -j NFQUEUE --queue-balance 2:5 --queue-bypass --queue-cpu-fanout
		{"2-5 bypass fanout", 2, 4, true, true, "0200040003000000"},
		// ip6tables-nft -A FORWARD -j NFQUEUE --queue-num 3
		{"num 3 fail-closed", 3, 1, false, false, "0300010000000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.QueueNum, cfg.QueueCount, cfg.Bypass, cfg.Fanout = tc.num, tc.count, tc.bypass, tc.fan
			_, f := applyFake(t, cfg, compatOnly)
			r := findRule(t, rulesOf(t, f.msgs), "steer to queue")
			info, _ := hex.DecodeString(tc.info)
			want := cat(nla(unix.NFTA_TARGET_NAME, []byte("NFQUEUE\x00")),
				nla(unix.NFTA_TARGET_REV, bu32(3)), nla(unix.NFTA_TARGET_INFO, info))
			if got := exprData(t, r, "target", 0); !bytes.Equal(got, want) {
				t.Errorf("target:\n got %x\nwant %x", got, want)
			}
			if last := r.exprs[len(r.exprs)-1].name; last != "target" {
				t.Errorf("last expression %q, want the target", last)
			}
		})
	}
}

func TestGoldenNativeQueue(t *testing.T) {
	cfg := DefaultConfig()
	cfg.QueueNum, cfg.QueueCount, cfg.Fanout = 2, 4, true
	_, f := applyFake(t, cfg, Capabilities{NativeQueue: true, CompatQueue: true})
	r := findRule(t, rulesOf(t, f.msgs), "steer to queue")
	// NFTA_QUEUE_NUM, _TOTAL, _FLAGS (NFT_QUEUE_FLAG_BYPASS|CPU_FANOUT), big-endian u16.
	want := cat(nla(unix.NFTA_QUEUE_NUM, []byte{0, 2}), nla(unix.NFTA_QUEUE_TOTAL, []byte{0, 4}),
		nla(unix.NFTA_QUEUE_FLAGS, []byte{0, 3}))
	if got := exprData(t, r, "queue", 0); !bytes.Equal(got, want) {
		t.Errorf("queue:\n got %x\nwant %x", got, want)
	}
}

// bitwise is the NFTA_BITWISE_* payload for reg1 = (reg1 & mask) ^ xor.
func bitwise(mask, xor []byte) []byte {
	return cat(nla(unix.NFTA_BITWISE_SREG, bu32(1)), nla(unix.NFTA_BITWISE_DREG, bu32(1)),
		nla(unix.NFTA_BITWISE_LEN, bu32(4)),
		nla(unix.NLA_F_NESTED|unix.NFTA_BITWISE_MASK, nla(unix.NFTA_DATA_VALUE, mask)),
		nla(unix.NLA_F_NESTED|unix.NFTA_BITWISE_XOR, nla(unix.NFTA_DATA_VALUE, xor)))
}

func TestGoldenMarkRules(t *testing.T) {
	if !littleEndian() {
		t.Skip("mark registers are host-endian; expected bytes are little-endian")
	}
	cfg := DefaultConfig()
	cfg.Marks = Marks{Mask: 0x0f000000, AcceptFlow: 0x01000000, DropFlow: 0x02000000, Reject: 0x03000000}
	_, f := applyFake(t, cfg, compatOnly)
	rs := rulesOf(t, f.msgs)

	// meta mark & 0x0f000000 == 0x01000000 ct mark set ct mark & 0xf0ffffff | 0x01000000 accept
	r := findRule(t, rs, "verdict accept flow")
	meta := cat(nla(unix.NFTA_META_DREG, bu32(1)), nla(unix.NFTA_META_KEY, bu32(unix.NFT_META_MARK)))
	if got := exprData(t, r, "meta", 0); !bytes.Equal(got[:8], meta[8:]) && !bytes.Equal(got, meta) {
		t.Errorf("meta load mark: %x", got)
	}
	if got, want := exprData(t, r, "bitwise", 0), bitwise([]byte{0, 0, 0, 0x0f}, []byte{0, 0, 0, 0}); !bytes.Equal(got, want) {
		t.Errorf("meta mark mask:\n got %x\nwant %x", got, want)
	}
	cmpWant := cat(nla(unix.NFTA_CMP_SREG, bu32(1)), nla(unix.NFTA_CMP_OP, bu32(unix.NFT_CMP_EQ)),
		nla(unix.NLA_F_NESTED|unix.NFTA_CMP_DATA, nla(unix.NFTA_DATA_VALUE, []byte{0, 0, 0, 0x01})))
	if got := exprData(t, r, "cmp", 0); !bytes.Equal(got, cmpWant) {
		t.Errorf("cmp:\n got %x\nwant %x", got, cmpWant)
	}
	// The merge: (ct mark & ^mask) ^ AcceptFlow, then ct mark set from reg 1.
	if got, want := exprData(t, r, "bitwise", 1), bitwise([]byte{0xff, 0xff, 0xff, 0xf0}, []byte{0, 0, 0, 0x01}); !bytes.Equal(got, want) {
		t.Errorf("ct mark merge:\n got %x\nwant %x", got, want)
	}
	ctSet := attrs(t, exprData(t, r, "ct", 1))
	if !bytes.Equal(ctSet[unix.NFTA_CT_SREG], bu32(1)) || !bytes.Equal(ctSet[unix.NFTA_CT_KEY], bu32(unix.NFT_CT_MARK)) {
		t.Errorf("ct set mark: %x", exprData(t, r, "ct", 1))
	}
	if got := exprData(t, r, "immediate", 0); !bytes.Contains(got, bu32(1)) /* NF_ACCEPT */ {
		t.Errorf("verdict: %x", got)
	}

	// ct mark & mask == DropFlow drop: no queue round trip for offloaded flows.
	r = findRule(t, rs, "offloaded flow dropped")
	if got := attrs(t, exprData(t, r, "ct", 0)); !bytes.Equal(got[unix.NFTA_CT_KEY], bu32(unix.NFT_CT_MARK)) || got[unix.NFTA_CT_DREG] == nil {
		t.Errorf("ct load: %v", got)
	}
	if got := exprData(t, r, "cmp", 0); !bytes.Contains(got, nla(unix.NFTA_DATA_VALUE, []byte{0, 0, 0, 0x02})) {
		t.Errorf("drop flow cmp: %x", got)
	}

	// Reject: tcp reset, else icmpx port unreachable.
	r = findRule(t, rs, "verdict reject")
	if got, want := exprData(t, r, "reject", 0), cat(nla(unix.NFTA_REJECT_TYPE, bu32(unix.NFT_REJECT_TCP_RST)), nla(unix.NFTA_REJECT_ICMP_CODE, []byte{0})); !bytes.Equal(got, want) {
		t.Errorf("tcp reset:\n got %x\nwant %x", got, want)
	}

	// The queue rule requires qguard's mark bits clear.
	r = findRule(t, rs, "steer to queue")
	if got := exprData(t, r, "cmp", 0); !bytes.Contains(got, nla(unix.NFTA_DATA_VALUE, []byte{0, 0, 0, 0})) {
		t.Errorf("queue rule mark-clear cmp: %x", got)
	}
}

func TestGoldenSets(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BlockSetTimeout = 5 * time.Minute
	cfg.Steer = Steer{Protocols: []string{"tcp", "udp"}, DPorts: []PortRange{{Lo: 8000, Hi: 8100}, {Lo: 53, Hi: 53}}}
	_, f := applyFake(t, cfg, compatOnly)
	found := map[string]map[uint16][]byte{}
	var portElems []byte
	for _, m := range f.msgs {
		switch msgType(m) {
		case unix.NFT_MSG_NEWSET:
			a := attrs(t, m.Data[4:])
			found[strings.TrimRight(string(a[unix.NFTA_SET_NAME]), "\x00")] = a
		case unix.NFT_MSG_NEWSETELEM:
			a := attrs(t, m.Data[4:])
			if bytes.Contains(a[unix.NFTA_SET_ELEM_LIST_ELEMENTS], []byte{0x1f, 0x40}) {
				portElems = a[unix.NFTA_SET_ELEM_LIST_ELEMENTS]
			}
		}
	}
	for _, s := range []struct {
		name           string
		keyType, klen  uint32
		flags, timeout uint32
	}{
		{Block4Set, 7, 4, unix.NFT_SET_TIMEOUT, 300000},  // ipv4_addr
		{Block6Set, 8, 16, unix.NFT_SET_TIMEOUT, 300000}, // ipv6_addr
		{DropFlow4Set, 7<<24 | 7<<18 | 12<<12 | 13<<6 | 13, 20, unix.NFT_SET_TIMEOUT | unix.NFT_SET_EVAL | 0x80, 120000},
	} {
		a, ok := found[s.name]
		if !ok {
			t.Errorf("set %s not created", s.name)
			continue
		}
		if !bytes.Equal(a[unix.NFTA_SET_KEY_TYPE], bu32(s.keyType)) || !bytes.Equal(a[unix.NFTA_SET_KEY_LEN], bu32(s.klen)) {
			t.Errorf("set %s key type %x len %x", s.name, a[unix.NFTA_SET_KEY_TYPE], a[unix.NFTA_SET_KEY_LEN])
		}
		if !bytes.Equal(a[unix.NFTA_SET_FLAGS], bu32(s.flags)) {
			t.Errorf("set %s flags %x, want %#x", s.name, a[unix.NFTA_SET_FLAGS], s.flags)
		}
		if !bytes.Equal(a[unix.NFTA_SET_TIMEOUT], bu64(uint64(s.timeout))) {
			t.Errorf("set %s timeout %x, want %d ms", s.name, a[unix.NFTA_SET_TIMEOUT], s.timeout)
		}
	}
	// th dport { 53, 8000-8100 }: nft's interval layout, as `nft --debug=netlink` shows it:
	// 0 [end], 53, 54 [end], 8000, 8101 [end].
	n := uint16(0)
	elem := func(port uint16, end bool) []byte {
		n++ // the library numbers list elements; the kernel ignores the type
		var b []byte
		if end {
			b = nla(unix.NFTA_SET_ELEM_FLAGS|unix.NLA_F_NESTED, bu32(unix.NFT_SET_ELEM_INTERVAL_END))
		}
		b = append(b, nla(unix.NFTA_SET_ELEM_KEY|unix.NLA_F_NESTED, nla(unix.NFTA_DATA_VALUE, be16(port)))...)
		return nla(n|unix.NLA_F_NESTED, b)
	}
	want := cat(elem(0, true), elem(53, false), elem(54, true), elem(8000, false), elem(8101, true))
	if !bytes.Equal(portElems, want) {
		t.Errorf("port set elements:\n got %x\nwant %x", portElems, want)
	}
}

func TestGoldenBlockSource(t *testing.T) {
	m, f := applyFake(t, DefaultConfig(), compatOnly)
	f.msgs = nil
	if err := m.BlockSource(netip.MustParseAddr("::ffff:198.18.1.2"), 90*time.Second); err != nil {
		t.Fatal(err)
	}
	var list []byte
	for _, msg := range f.msgs {
		if msgType(msg) == unix.NFT_MSG_NEWSETELEM {
			a := attrs(t, msg.Data[4:])
			if string(a[unix.NFTA_SET_ELEM_LIST_SET]) != Block4Set+"\x00" {
				t.Errorf("element added to set %q", a[unix.NFTA_SET_ELEM_LIST_SET])
			}
			list = a[unix.NFTA_SET_ELEM_LIST_ELEMENTS]
		}
	}
	want := nla(unix.NFTA_LIST_ELEM|unix.NLA_F_NESTED, cat(
		nla(unix.NFTA_SET_ELEM_KEY|unix.NLA_F_NESTED, nla(unix.NFTA_DATA_VALUE, []byte{198, 18, 1, 2})),
		nla(unix.NFTA_SET_ELEM_TIMEOUT, bu64(90000))))
	if !bytes.Equal(list, want) {
		t.Errorf("block element:\n got %x\nwant %x", list, want)
	}
	for _, bad := range []struct {
		a netip.Addr
		d time.Duration
	}{{netip.Addr{}, time.Second}, {netip.MustParseAddr("198.18.1.2"), -time.Second}, {netip.MustParseAddr("198.18.1.2"), time.Microsecond}} {
		if err := m.BlockSource(bad.a, bad.d); err == nil {
			t.Errorf("BlockSource(%v, %v) succeeded", bad.a, bad.d)
		}
	}
}

// TestProbeFallback: where the kernel refuses the native expression with
// ENOENT, the probe picks compat; a permission error is an error.
func TestProbeFallback(t *testing.T) {
	f := &fakeKernel{errno: int(unix.ENOENT), fail: "queue"}
	caps, err := probe(f.dial)
	if err != nil {
		t.Fatal(err)
	}
	if caps.NativeQueue || !caps.CompatQueue {
		t.Fatalf("caps %+v, want compat only", caps)
	}
	if best, err := caps.Best(); err != nil || best != QueueCompat {
		t.Fatalf("Best() = %v, %v", best, err)
	}
	if s := caps.String(); !strings.Contains(s, "using compat") || !strings.Contains(s, "ENOENT") {
		t.Errorf("String() = %q", s)
	}
	// The probe table is created and deleted in the same batch.
	var kinds []uint16
	for _, m := range f.msgs {
		kinds = append(kinds, msgType(m))
	}
	if !strings.Contains(string(rune(0))+hex.EncodeToString(u16s(kinds)), hex.EncodeToString(u16s([]uint16{unix.NFT_MSG_NEWTABLE, unix.NFT_MSG_NEWCHAIN, unix.NFT_MSG_NEWRULE, unix.NFT_MSG_DELTABLE}))) {
		t.Errorf("probe batch message types %v", kinds)
	}

	both := &fakeKernel{errno: int(unix.ENOENT), fail: "NFQUEUE"}
	if caps, err = probe(both.dial); err != nil || !caps.NativeQueue || caps.CompatQueue {
		t.Fatalf("native-only kernel: %+v, %v", caps, err)
	}
	none := &fakeKernel{errno: int(unix.EOPNOTSUPP), fail: "probe"}
	caps, err = probe(none.dial)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := caps.Best(); err == nil {
		t.Fatal("Best() on a kernel without queue support succeeded")
	}
	perm := &fakeKernel{errno: int(unix.EPERM), fail: "probe"}
	if _, err := probe(perm.dial); err == nil {
		t.Fatal("probe without permission succeeded")
	}
}

func u16s(v []uint16) []byte {
	var b []byte
	for _, x := range v {
		b = binary.BigEndian.AppendUint16(b, x)
	}
	return b
}

// TestGoldenKernelAnswer: the rule that lets the kernel's own answers to
// rejected packets pass sits right before the queue rule, in every chain.
func TestGoldenKernelAnswer(t *testing.T) {
	if !littleEndian() {
		t.Skip("ct state and status registers are host-endian; expected bytes are little-endian")
	}
	cfg := DefaultConfig()
	cfg.Hooks = []Hook{{"forward", 0}, {"output", 0}}
	_, f := applyFake(t, cfg, compatOnly)
	rs := rulesOf(t, f.msgs)
	n := 0
	for i, r := range rs {
		if r.comment != "qguard: steer to queue" {
			continue
		}
		n++
		if strings.HasPrefix(r.chain, "forward") {
			// No kernel answer passes forward, and the rule's ct
			// expressions would turn conntrack on for the namespace.
			for _, o := range rs {
				if o.chain == r.chain && o.comment == "qguard: kernel answer not queued" {
					t.Fatalf("chain %s has the kernel answer rule", r.chain)
				}
			}
			continue
		}
		if i == 0 || rs[i-1].comment != "qguard: kernel answer not queued" || rs[i-1].chain != r.chain {
			t.Fatalf("chain %s: the rule before the queue rule is not \"kernel answer not queued\"", r.chain)
		}
		k := rs[i-1]
		// ct state & related != 0, ct direction == reply, ct status & confirmed == 0, accept.
		for j, key := range []uint32{unix.NFT_CT_STATE, unix.NFT_CT_DIRECTION, unix.NFT_CT_STATUS} {
			if got := attrs(t, exprData(t, k, "ct", j)); !bytes.Equal(got[unix.NFTA_CT_KEY], bu32(key)) {
				t.Errorf("ct load #%d: key %x, want %d", j, got[unix.NFTA_CT_KEY], key)
			}
		}
		cmp := func(op uint32, v []byte) []byte {
			return cat(nla(unix.NFTA_CMP_SREG, bu32(1)), nla(unix.NFTA_CMP_OP, bu32(op)),
				nla(unix.NLA_F_NESTED|unix.NFTA_CMP_DATA, nla(unix.NFTA_DATA_VALUE, v)))
		}
		for j, want := range [][]byte{cmp(unix.NFT_CMP_NEQ, []byte{0, 0, 0, 0}), cmp(unix.NFT_CMP_EQ, []byte{1}), cmp(unix.NFT_CMP_EQ, []byte{0, 0, 0, 0})} {
			if got := exprData(t, k, "cmp", j); !bytes.Equal(got, want) {
				t.Errorf("cmp #%d:\n got %x\nwant %x", j, got, want)
			}
		}
		for j, mask := range [][]byte{{4, 0, 0, 0}, {8, 0, 0, 0}} { // related, IPS_CONFIRMED
			if got, want := exprData(t, k, "bitwise", j), bitwise(mask, []byte{0, 0, 0, 0}); !bytes.Equal(got, want) {
				t.Errorf("bitwise #%d:\n got %x\nwant %x", j, got, want)
			}
		}
		if got := exprData(t, k, "immediate", 0); !bytes.Contains(got, bu32(1)) /* NF_ACCEPT */ {
			t.Errorf("verdict: %x", got)
		}
	}
	if n != 2 {
		t.Fatalf("%d queue rules, want one per chain", n)
	}
}

// TestGoldenLayout: Apply adds the base chain (on its hook, no rules) and
// the generation's regular chain with the rules in one batch, and only in
// a later batch the base chain's single rule, a jump to the generation.
// Nothing is ever deleted on the way.
func TestGoldenLayout(t *testing.T) {
	_, f := applyFake(t, DefaultConfig(), compatOnly)
	batch, genRules, jumpBatch := 0, map[int]int{}, -1
	var jump goldenRule
	for _, m := range f.msgs {
		switch msgType(m) {
		case unix.NFNL_MSG_BATCH_BEGIN:
			batch++
		case unix.NFT_MSG_NEWCHAIN:
			a := attrs(t, m.Data[4:])
			name := strings.TrimRight(string(a[unix.NFTA_CHAIN_NAME]), "\x00")
			hook, isBase := a[unix.NFTA_CHAIN_HOOK]
			switch name {
			case "forward":
				want := cat(nla(unix.NFTA_HOOK_HOOKNUM, bu32(unix.NF_INET_FORWARD)), nla(unix.NFTA_HOOK_PRIORITY, bu32(0)))
				if !isBase || !bytes.Equal(hook, want) {
					t.Errorf("base chain forward: hook %x, want %x", hook, want)
				}
			case "forward_g1":
				if isBase {
					t.Errorf("generation chain forward_g1 has a hook: %x", hook)
				}
			default:
				t.Errorf("unexpected chain %q", name)
			}
		case unix.NFT_MSG_NEWRULE:
			r := rulesOf(t, []netlink.Message{m})[0]
			switch r.chain {
			case "forward_g1":
				genRules[batch]++
			case "forward":
				jump, jumpBatch = r, batch
			}
		case unix.NFT_MSG_DELCHAIN, unix.NFT_MSG_DELTABLE:
			t.Errorf("message type %d deletes a chain or table", msgType(m))
		}
	}
	if len(genRules) != 1 || genRules[jumpBatch] != 0 || jumpBatch < 0 {
		t.Fatalf("generation rules per batch %v, jump in batch %d: want the rules in one batch before the jump's", genRules, jumpBatch)
	}
	// immediate: NFTA_IMMEDIATE_DREG NFT_REG_VERDICT, NFTA_IMMEDIATE_DATA {
	// NFTA_DATA_VERDICT { NFTA_VERDICT_CODE NFT_JUMP (-3), NFTA_VERDICT_CHAIN } }.
	want := cat(nla(unix.NFTA_IMMEDIATE_DREG, bu32(unix.NFT_REG_VERDICT)),
		nla(unix.NLA_F_NESTED|unix.NFTA_IMMEDIATE_DATA, nla(unix.NLA_F_NESTED|unix.NFTA_DATA_VERDICT,
			cat(nla(unix.NFTA_VERDICT_CODE, bu32(0xfffffffd)), nla(unix.NFTA_VERDICT_CHAIN, []byte("forward_g1\x00"))))))
	if len(jump.exprs) != 1 || jump.comment != "qguard: generation 1" {
		t.Fatalf("base chain rule %+v, want one jump with comment \"qguard: generation 1\"", jump)
	}
	if got := exprData(t, jump, "immediate", 0); !bytes.Equal(got, want) {
		t.Errorf("jump:\n got %x\nwant %x", got, want)
	}
}
