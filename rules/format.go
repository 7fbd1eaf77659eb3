package rules

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/proto"
)

// formatRule renders a rule read back from the kernel as nft prints it
// (nft list ruleset), anonymous sets by name. See formatRuleSets.
func formatRule(r *nftables.Rule) string { return formatRuleSets(r, nil) }

// formatRuleSets renders a rule as `nft list ruleset` does: equality
// without "==", ct state and status bits and ct direction by name, the
// meta nfproto dependency of an ip/ip6 match left out, the contents of the
// anonymous sets in sets written out. It knows the expressions qguard
// installs and falls back to the expression's type name for anything
// else.
func formatRuleSets(r *nftables.Rule, sets map[string]*setContent) string {
	f := &formatter{regs: map[uint32]operand{}, sets: sets}
	for _, e := range r.Exprs {
		f.expr(e)
	}
	out := strings.Join(dropDependencies(f.parts), " ")
	if c, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok {
		out += fmt.Sprintf(" comment %q", c)
	}
	return out
}

// setContent is what an anonymous set holds, read back from the kernel.
type setContent struct {
	interval bool
	elems    []nftables.SetElement
}

// dropDependencies leaves out "meta nfproto ipv4" before an "ip ..." match
// (and ipv6 before "ip6 ..."), as nft does: the match implies it.
func dropDependencies(parts []string) []string {
	out := parts[:0:0]
	for i, p := range parts {
		if i+1 < len(parts) {
			next := parts[i+1]
			if p == "meta nfproto ipv4" && strings.HasPrefix(next, "ip ") ||
				p == "meta nfproto ipv6" && strings.HasPrefix(next, "ip6 ") {
				continue
			}
		}
		out = append(out, p)
	}
	return out
}

// operand is what a register holds: a description and how to print values
// compared with it.
type operand struct {
	text   string
	kind   valueKind
	slots  uint32
	masked bool   // a bitwise AND applied: nft keeps "==" then
	mask   []byte // that AND's mask, for flag names
}

type valueKind uint8

const (
	kindHex valueKind = iota // the zero value: the key tables below rely on it
	kindProto
	kindNFProto
	kindIfName
	kindPort
	kindAddr
	kindCTState
	kindCTStatus
	kindCTDir
)

// formatter tracks register contents by 32-bit slot: the kernel reports a
// register in its canonical form (NFT_REG_1 for NFT_REG32_00, ...), so a
// concatenation key shows up as loads into consecutive slots.
type formatter struct {
	regs  map[uint32]operand // by slot
	parts []string
	sets  map[string]*setContent
}

// slot maps a register number to its 32-bit slot (nft_parse_register).
func slot(reg uint32) uint32 {
	if reg <= unix.NFT_REG_4 {
		return reg * 4
	}
	return reg - unix.NFT_REG32_00 + 4
}

func (f *formatter) load(reg, n uint32, o operand) {
	s := slot(reg)
	o.slots = max((n+3)/4, 1)
	for i := s; i < s+o.slots; i++ {
		delete(f.regs, i)
	}
	f.regs[s] = o
}

func (f *formatter) reg(reg uint32) operand { return f.regs[slot(reg)] }

func (f *formatter) expr(e expr.Any) {
	switch e := e.(type) {
	case *expr.Meta:
		f.meta(e)
	case *expr.Ct:
		// The library does not decode NFTA_CT_SREG: a ct statement reads
		// back with register 0, which no load uses.
		if e.SourceRegister || e.Register == 0 {
			f.parts = append(f.parts, "ct "+ctKeyName(e.Key)+" set "+f.regs[slot(unix.NFT_REG_1)].text)
			return
		}
		f.load(e.Register, 4, operand{text: "ct " + ctKeyName(e.Key), kind: ctKeyKinds[e.Key]})
	case *expr.Payload:
		f.load(e.DestRegister, e.Len, payloadOperand(e))
	case *expr.Bitwise:
		o := f.reg(e.SourceRegister)
		mask, xor := hostU32(e.Mask), hostU32(e.Xor)
		switch {
		case xor == 0 && (o.kind == kindCTState || o.kind == kindCTStatus):
			// A flag test: the compare that follows prints it.
			o.mask = e.Mask
		case xor == 0:
			o.text = fmt.Sprintf("%s & %#08x", o.text, mask)
		default:
			// (x & m) ^ v with v inside ^m is x & (m|v) | v, which is
			// how nft prints it.
			o.text = fmt.Sprintf("%s & %#08x | %#08x", o.text, mask|xor, xor)
		}
		o.masked = true
		f.regs[slot(e.DestRegister)] = o
	case *expr.Cmp:
		f.parts = append(f.parts, f.cmp(e))
	case *expr.Range:
		o := f.reg(e.Register)
		f.parts = append(f.parts, fmt.Sprintf("%s %s-%s", o.text, formatValue(o.kind, e.FromData), formatValue(o.kind, e.ToData)))
	case *expr.Lookup:
		if e.IsDestRegSet {
			f.mapLookup(e)
			return
		}
		not := ""
		if e.Invert {
			not = "!= "
		}
		f.parts = append(f.parts, f.keyText(e.SourceRegister)+" "+not+f.setText(e.SetName, f.reg(e.SourceRegister)))
	case *expr.Dynset:
		f.parts = append(f.parts, f.dynset(e))
	case *expr.Immediate:
		f.load(e.Register, uint32(len(e.Data)), operand{text: strconv.FormatUint(uint64(hostU32(pad4(e.Data))), 10)})
	case *expr.Limit:
		f.parts = append(f.parts, limitText(e))
	case *expr.Log:
		f.parts = append(f.parts, logText(e))
	case *expr.Byteorder:
		o := f.reg(e.SourceRegister)
		if e.Op == expr.ByteorderHton {
			o.text = "htonl(" + o.text + ")"
		}
		f.regs[slot(e.DestRegister)] = o
	case *expr.Counter:
		f.parts = append(f.parts, fmt.Sprintf("counter packets %d bytes %d", e.Packets, e.Bytes))
	case *expr.Verdict:
		f.parts = append(f.parts, verdictName(e.Kind))
		if e.Chain != "" {
			f.parts[len(f.parts)-1] += " " + e.Chain
		}
	case *expr.Queue:
		f.parts = append(f.parts, queueText(e.Num, e.Total, e.Flag&expr.QueueFlagBypass != 0, e.Flag&expr.QueueFlagFanout != 0))
	case *expr.Target:
		f.parts = append(f.parts, targetText(e))
	case *expr.Reject:
		switch {
		case e.Type == unix.NFT_REJECT_TCP_RST:
			f.parts = append(f.parts, "reject with tcp reset")
		case e.Type == unix.NFT_REJECT_ICMPX_UNREACH && e.Code == unix.NFT_REJECT_ICMPX_PORT_UNREACH:
			f.parts = append(f.parts, "reject") // nft's default in an inet table
		default:
			f.parts = append(f.parts, fmt.Sprintf("reject with icmpx type %d code %d", e.Type, e.Code))
		}
	default:
		f.parts = append(f.parts, fmt.Sprintf("<%T>", e))
	}
}

func (f *formatter) meta(e *expr.Meta) {
	if e.SourceRegister {
		f.parts = append(f.parts, "meta "+metaKeyName(e.Key)+" set "+f.reg(e.Register).text)
		return
	}
	k := metaKeyKinds[e.Key]
	n := uint32(4)
	if k == kindIfName {
		n = unix.IFNAMSIZ
	}
	text := "meta " + metaKeyName(e.Key)
	if k == kindIfName {
		text = metaKeyName(e.Key) // nft prints interface keys unqualified
	}
	f.load(e.Register, n, operand{text: text, kind: k})
}

// keyText names a lookup key: the load at the register and, for a
// concatenation, the loads in the slots that follow it.
func (f *formatter) keyText(reg uint32) string {
	var parts []string
	for s := slot(reg); ; {
		o, ok := f.regs[s]
		if !ok {
			break
		}
		parts = append(parts, o.text)
		s += o.slots
	}
	return strings.Join(parts, " . ")
}

// payloadField is a payload load: which header, where in it and how long.
type payloadField struct {
	base        expr.PayloadBase
	offset, len uint32
}

// payloadOperands names the payload loads qguard writes, as nft does.
var payloadOperands = map[payloadField]operand{
	{expr.PayloadBaseNetworkHeader, 12, 4}:  {text: "ip saddr", kind: kindAddr},
	{expr.PayloadBaseNetworkHeader, 16, 4}:  {text: "ip daddr", kind: kindAddr},
	{expr.PayloadBaseNetworkHeader, 8, 16}:  {text: "ip6 saddr", kind: kindAddr},
	{expr.PayloadBaseNetworkHeader, 24, 16}: {text: "ip6 daddr", kind: kindAddr},
	{expr.PayloadBaseTransportHeader, 0, 2}: {text: "th sport", kind: kindPort},
	{expr.PayloadBaseTransportHeader, 2, 2}: {text: "th dport", kind: kindPort},
}

func payloadOperand(e *expr.Payload) operand {
	if o, ok := payloadOperands[payloadField{e.Base, e.Offset, e.Len}]; ok {
		return o
	}
	return operand{text: fmt.Sprintf("payload base %d offset %d len %d", e.Base, e.Offset, e.Len)}
}

func formatValue(k valueKind, b []byte) string {
	switch k {
	case kindProto:
		if len(b) == 1 {
			if b[0] == proto.ICMPv6 {
				return "ipv6-icmp" // nft's name for 58
			}
			if name := proto.Name(b[0]); name != "" {
				return name
			}
			return strconv.Itoa(int(b[0]))
		}
	case kindNFProto:
		if len(b) == 1 {
			switch b[0] {
			case unix.NFPROTO_IPV4:
				return "ipv4"
			case unix.NFPROTO_IPV6:
				return "ipv6"
			}
		}
	case kindIfName:
		return strconv.Quote(strings.TrimRight(string(b), "\x00"))
	case kindPort:
		if len(b) == 2 {
			return strconv.Itoa(int(binary.BigEndian.Uint16(b)))
		}
	case kindAddr:
		if a, ok := netip.AddrFromSlice(b); ok {
			return a.String()
		}
	case kindCTState:
		if len(b) == 4 && hostU32(b) == 0 {
			return "0"
		}
	case kindCTDir:
		if len(b) == 1 && b[0] <= 1 {
			return []string{"original", "reply"}[b[0]]
		}
	}
	if len(b) == 4 {
		return fmt.Sprintf("%#08x", hostU32(b))
	}
	return fmt.Sprintf("0x%x", b)
}

func hostU32(b []byte) uint32 {
	if len(b) != 4 {
		return 0
	}
	return binary.NativeEndian.Uint32(b)
}

func queueText(num, total uint16, bypass, fanout bool) string {
	s := "queue num " + strconv.Itoa(int(num))
	if total > 1 {
		s += "-" + strconv.Itoa(int(num)+int(total)-1)
	}
	var flags []string
	if bypass {
		flags = append(flags, "bypass")
	}
	if fanout {
		flags = append(flags, "fanout")
	}
	if len(flags) > 0 {
		s += " " + strings.Join(flags, ",")
	}
	return s
}

func targetText(e *expr.Target) string {
	if u, ok := e.Info.(*xt.Unknown); ok && e.Name == "NFQUEUE" && e.Rev == 3 {
		if num, total, bypass, fanout, err := decodeNFQueueInfo(*u); err == nil {
			return queueText(num, total, bypass, fanout) // nft prints it so too
		}
	}
	return fmt.Sprintf("xt target %s rev %d", e.Name, e.Rev)
}

var (
	verdictNames = map[expr.VerdictKind]string{expr.VerdictAccept: "accept", expr.VerdictDrop: "drop",
		expr.VerdictReturn: "return", expr.VerdictContinue: "continue", expr.VerdictJump: "jump", expr.VerdictGoto: "goto"}
	metaKeyNames = map[expr.MetaKey]string{expr.MetaKeyMARK: "mark", expr.MetaKeyL4PROTO: "l4proto",
		expr.MetaKeyNFPROTO: "nfproto", expr.MetaKeyIIFNAME: "iifname", expr.MetaKeyOIFNAME: "oifname",
		expr.MetaKeySKUID: "skuid", expr.MetaKeySKGID: "skgid"}
	ctKeyNames = map[expr.CtKey]string{expr.CtKeyMARK: "mark", expr.CtKeySTATE: "state",
		expr.CtKeyDIRECTION: "direction", expr.CtKeySTATUS: "status", unix.NFT_CT_ID: "id"}

	// How a key's value prints; a key not listed prints in hex (kindHex is
	// the zero value).
	metaKeyKinds = map[expr.MetaKey]valueKind{expr.MetaKeyL4PROTO: kindProto, expr.MetaKeyNFPROTO: kindNFProto,
		expr.MetaKeyIIFNAME: kindIfName, expr.MetaKeyOIFNAME: kindIfName}
	ctKeyKinds = map[expr.CtKey]valueKind{expr.CtKeySTATE: kindCTState, expr.CtKeySTATUS: kindCTStatus,
		expr.CtKeyDIRECTION: kindCTDir}
)

// nameOf returns k's name in names, or k's number in the format unknown
// for a value qguard does not write itself.
func nameOf[K comparable](names map[K]string, k K, unknown string) string {
	if s, ok := names[k]; ok {
		return s
	}
	return fmt.Sprintf(unknown, k)
}

func verdictName(k expr.VerdictKind) string { return nameOf(verdictNames, k, "verdict %d") }
func metaKeyName(k expr.MetaKey) string     { return nameOf(metaKeyNames, k, "key%d") }
func ctKeyName(k expr.CtKey) string         { return nameOf(ctKeyNames, k, "key%d") }

// cmp prints a compare as nft does: "==" only after a bitwise AND (nft
// shows a plain equality without it), ct state and status flag tests by
// flag name ("ct state related", "ct status ! confirmed").
func (f *formatter) cmp(e *expr.Cmp) string {
	o := f.reg(e.Register)
	op := map[expr.CmpOp]string{expr.CmpOpEq: "==", expr.CmpOpNeq: "!=", expr.CmpOpLt: "<", expr.CmpOpLte: "<=", expr.CmpOpGt: ">", expr.CmpOpGte: ">="}[e.Op]
	if o.mask != nil && hostU32(e.Data) == 0 && (e.Op == expr.CmpOpEq || e.Op == expr.CmpOpNeq) {
		names := flagNames(o.kind, hostU32(o.mask))
		if e.Op == expr.CmpOpEq {
			return o.text + " ! " + names // none of the bits
		}
		return o.text + " " + names // any of the bits
	}
	if o.mask != nil { // some other test of masked flags
		o.text = fmt.Sprintf("%s & %s", o.text, flagNames(o.kind, hostU32(o.mask)))
	}
	v := formatValue(o.kind, e.Data)
	if e.Op == expr.CmpOpEq && !o.masked {
		return o.text + " " + v
	}
	return fmt.Sprintf("%s %s %s", o.text, op, v)
}

var (
	ctStateBits  = []string{0: "invalid", 1: "established", 2: "related", 3: "new", 6: "untracked"}
	ctStatusBits = []string{0: "expected", 1: "seen-reply", 2: "assured", 3: "confirmed", 4: "snat", 5: "dnat", 9: "dying"}
)

// flagNames spells a ct state or status bit mask the way nft does:
// "established,related".
func flagNames(k valueKind, v uint32) string {
	bits := ctStatusBits
	if k == kindCTState {
		bits = ctStateBits
	}
	var names []string
	for i := range 32 {
		if v&(1<<i) == 0 {
			continue
		}
		if i < len(bits) && bits[i] != "" {
			names = append(names, bits[i])
		} else {
			names = append(names, fmt.Sprintf("%#x", uint32(1)<<i))
		}
	}
	if k == kindCTState {
		// nft lists states in this order.
		order := []string{"invalid", "established", "related", "new", "untracked"}
		slices.SortStableFunc(names, func(a, b string) int {
			return slices.Index(order, a) - slices.Index(order, b)
		})
	}
	return strings.Join(names, ",")
}

// setText names a looked-up set: a named one as @name, an anonymous one by
// its contents, "{ icmp, tcp, udp }", as nft prints it.
func (f *formatter) setText(name string, key operand) string {
	sc, ok := f.sets[name]
	if !ok || key.slots > 4 || key.kind == kindHex && len(sc.elems) > 0 && len(sc.elems[0].Key) > 4 {
		return "@" + name
	}
	var items []string
	if sc.interval {
		items = intervalItems(key.kind, sc.elems)
	} else {
		els := slices.Clone(sc.elems)
		slices.SortStableFunc(els, func(a, b nftables.SetElement) int { return bytesCmp(a.Key, b.Key) }) // as nft lists them
		for _, el := range els {
			items = append(items, formatValue(key.kind, el.Key))
		}
	}
	return "{ " + strings.Join(items, ", ") + " }"
}

// intervalItems turns the kernel's interval elements (a start, then the
// first value past the range marked IntervalEnd) into "a", "a-b" and, for
// addresses, prefixes.
func intervalItems(k valueKind, els []nftables.SetElement) []string {
	els = slices.Clone(els)
	slices.SortStableFunc(els, func(a, b nftables.SetElement) int { return bytesCmp(a.Key, b.Key) })
	var out []string
	for i, el := range els {
		if el.IntervalEnd {
			continue
		}
		last := allOnes(len(el.Key)) // open to the top
		if i+1 < len(els) && els[i+1].IntervalEnd {
			last = minusOne(els[i+1].Key)
		}
		out = append(out, rangeText(k, el.Key, last))
	}
	return out
}

func rangeText(k valueKind, first, last []byte) string {
	if bytesCmp(first, last) == 0 {
		return formatValue(k, first)
	}
	if k == kindAddr {
		if a, ok := netip.AddrFromSlice(first); ok {
			for bits := 0; bits <= a.BitLen(); bits++ {
				if p := netip.PrefixFrom(a, bits); p.Masked().Addr() == a && slices.Equal(lastAddr(p).AsSlice(), last) {
					return p.String()
				}
			}
		}
	}
	return formatValue(k, first) + "-" + formatValue(k, last)
}

func bytesCmp(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return len(a) - len(b)
}

func allOnes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 0xff
	}
	return b
}

// minusOne is the big-endian value one below b (b > 0).
func minusOne(b []byte) []byte {
	out := slices.Clone(b)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]--
		if out[i] != 0xff {
			break
		}
	}
	return out
}

// nftDuration prints a duration as nft does: 2m, 1h30m, 1d, 500ms.
func nftDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		name string
		d    time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}} {
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.d
		}
	}
	if b.Len() == 0 {
		return d.String()
	}
	return b.String()
}

// dynset prints `add @set { key timeout t }`, `update @set { key limit
// ... }` as nft does.
func (f *formatter) dynset(e *expr.Dynset) string {
	op := "add"
	if e.Operation == unix.NFT_DYNSET_OP_UPDATE {
		op = "update"
	}
	in := f.keyText(e.SrcRegKey)
	if e.SrcRegData != 0 {
		var keys []string
		for sl := slot(e.SrcRegKey); sl < slot(e.SrcRegData); {
			o, ok := f.regs[sl]
			if !ok {
				break
			}
			keys = append(keys, o.text)
			sl += o.slots
		}
		in = strings.Join(keys, " . ") + " : " + f.reg(e.SrcRegData).text
	}
	if e.Timeout > 0 {
		in += " timeout " + nftDuration(e.Timeout)
	}
	for _, x := range e.Exprs {
		if l, ok := x.(*expr.Limit); ok {
			in += " " + limitText(l)
		}
	}
	return fmt.Sprintf("%s @%s { %s }", op, e.SetName, in)
}

func limitText(e *expr.Limit) string {
	over := ""
	if e.Over {
		over = "over "
	}
	unit := map[expr.LimitTime]string{expr.LimitTimeSecond: "second", expr.LimitTimeMinute: "minute",
		expr.LimitTimeHour: "hour", expr.LimitTimeDay: "day", expr.LimitTimeWeek: "week"}[e.Unit]
	return fmt.Sprintf("limit rate %s%d/%s burst %d packets", over, e.Rate, unit, e.Burst)
}

func logText(e *expr.Log) string {
	out := "log"
	if e.Key&(1<<unix.NFTA_LOG_PREFIX) != 0 {
		out += fmt.Sprintf(" prefix %q", string(e.Data))
	}
	if e.Key&(1<<unix.NFTA_LOG_GROUP) != 0 {
		out += fmt.Sprintf(" group %d", e.Group)
	}
	if e.Key&(1<<unix.NFTA_LOG_SNAPLEN) != 0 {
		out += fmt.Sprintf(" snaplen %d", e.Snaplen)
	}
	return out
}

// mapLookup is `key map @m` (into a register) or `key vmap @m` (the
// verdict), as nft prints them.
func (f *formatter) mapLookup(e *expr.Lookup) {
	key := f.keyText(e.SourceRegister)
	if e.DestRegister == 0 {
		f.parts = append(f.parts, key+" vmap @"+e.SetName)
		return
	}
	f.load(e.DestRegister, 4, operand{text: key + " map @" + e.SetName})
}

func pad4(b []byte) []byte {
	if len(b) >= 4 {
		return b[:4]
	}
	return append(slices.Clone(b), make([]byte, 4-len(b))...)
}
