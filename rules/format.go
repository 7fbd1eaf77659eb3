package rules

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// formatRule renders a rule read back from the kernel in nft-like syntax.
// It knows the expressions qguard installs and falls back to the
// expression's type name for anything else.
func formatRule(r *nftables.Rule) string {
	f := &formatter{regs: map[uint32]operand{}}
	for _, e := range r.Exprs {
		f.expr(e)
	}
	out := strings.Join(f.parts, " ")
	if c, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok {
		out += fmt.Sprintf(" comment %q", c)
	}
	return out
}

// operand is what a register holds: a description and how to print values
// compared with it.
type operand struct {
	text  string
	kind  valueKind
	slots uint32
}

type valueKind uint8

const (
	kindHex valueKind = iota
	kindProto
	kindNFProto
	kindIfName
	kindPort
	kindAddr
	kindCTState
)

// formatter tracks register contents by 32-bit slot: the kernel reports a
// register in its canonical form (NFT_REG_1 for NFT_REG32_00, ...), so a
// concatenation key shows up as loads into consecutive slots.
type formatter struct {
	regs  map[uint32]operand // by slot
	parts []string
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
		k := kindHex
		if e.Key == expr.CtKeySTATE {
			k = kindCTState
		}
		f.load(e.Register, 4, operand{text: "ct " + ctKeyName(e.Key), kind: k})
	case *expr.Payload:
		f.load(e.DestRegister, e.Len, payloadOperand(e))
	case *expr.Bitwise:
		o := f.reg(e.SourceRegister)
		mask, xor := hostU32(e.Mask), hostU32(e.Xor)
		if xor == 0 {
			o.text = fmt.Sprintf("%s & %#08x", o.text, mask)
		} else {
			o.text = fmt.Sprintf("%s & %#08x | %#08x", o.text, mask, xor)
		}
		f.regs[slot(e.DestRegister)] = o
	case *expr.Cmp:
		o := f.reg(e.Register)
		op := map[expr.CmpOp]string{expr.CmpOpEq: "==", expr.CmpOpNeq: "!=", expr.CmpOpLt: "<", expr.CmpOpLte: "<=", expr.CmpOpGt: ">", expr.CmpOpGte: ">="}[e.Op]
		f.parts = append(f.parts, fmt.Sprintf("%s %s %s", o.text, op, formatValue(o.kind, e.Data)))
	case *expr.Range:
		o := f.reg(e.Register)
		f.parts = append(f.parts, fmt.Sprintf("%s %s-%s", o.text, formatValue(o.kind, e.FromData), formatValue(o.kind, e.ToData)))
	case *expr.Lookup:
		f.parts = append(f.parts, f.keyText(e.SourceRegister)+" @"+e.SetName)
	case *expr.Dynset:
		f.parts = append(f.parts, fmt.Sprintf("add @%s { %s timeout %v }", e.SetName, f.keyText(e.SrcRegKey), e.Timeout))
	case *expr.Counter:
		f.parts = append(f.parts, fmt.Sprintf("counter packets %d bytes %d", e.Packets, e.Bytes))
	case *expr.Verdict:
		f.parts = append(f.parts, verdictName(e.Kind))
		if e.Chain != "" {
			f.parts[len(f.parts)-1] += " " + e.Chain
		}
	case *expr.Queue:
		f.parts = append(f.parts, queueText(e.Num, e.Total, e.Flag&expr.QueueFlagBypass != 0, e.Flag&expr.QueueFlagFanout != 0)+" (nft queue)")
	case *expr.Target:
		f.parts = append(f.parts, targetText(e))
	case *expr.Reject:
		switch {
		case e.Type == unix.NFT_REJECT_TCP_RST:
			f.parts = append(f.parts, "reject with tcp reset")
		case e.Type == unix.NFT_REJECT_ICMPX_UNREACH && e.Code == unix.NFT_REJECT_ICMPX_PORT_UNREACH:
			f.parts = append(f.parts, "reject with icmpx port-unreachable")
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
	k := kindHex
	switch e.Key {
	case expr.MetaKeyL4PROTO:
		k = kindProto
	case expr.MetaKeyNFPROTO:
		k = kindNFProto
	case expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME:
		k = kindIfName
	}
	n := uint32(4)
	if k == kindIfName {
		n = unix.IFNAMSIZ
	}
	f.load(e.Register, n, operand{text: "meta " + metaKeyName(e.Key), kind: k})
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

func payloadOperand(e *expr.Payload) operand {
	switch e.Base {
	case expr.PayloadBaseNetworkHeader:
		switch {
		case e.Len == 4 && e.Offset == 12:
			return operand{text: "ip saddr", kind: kindAddr}
		case e.Len == 4 && e.Offset == 16:
			return operand{text: "ip daddr", kind: kindAddr}
		case e.Len == 16 && e.Offset == 8:
			return operand{text: "ip6 saddr", kind: kindAddr}
		case e.Len == 16 && e.Offset == 24:
			return operand{text: "ip6 daddr", kind: kindAddr}
		}
	case expr.PayloadBaseTransportHeader:
		switch {
		case e.Len == 2 && e.Offset == 0:
			return operand{text: "th sport", kind: kindPort}
		case e.Len == 2 && e.Offset == 2:
			return operand{text: "th dport", kind: kindPort}
		}
	}
	return operand{text: fmt.Sprintf("payload base %d offset %d len %d", e.Base, e.Offset, e.Len)}
}

func formatValue(k valueKind, b []byte) string {
	switch k {
	case kindProto:
		if len(b) == 1 {
			for name, n := range protoNums {
				if n == b[0] && name != "ipv6-icmp" {
					return name
				}
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
			return queueText(num, total, bypass, fanout) + " (xt NFQUEUE)"
		}
	}
	return fmt.Sprintf("xt target %s rev %d", e.Name, e.Rev)
}

func verdictName(k expr.VerdictKind) string {
	switch k {
	case expr.VerdictAccept:
		return "accept"
	case expr.VerdictDrop:
		return "drop"
	case expr.VerdictReturn:
		return "return"
	case expr.VerdictContinue:
		return "continue"
	case expr.VerdictJump:
		return "jump"
	case expr.VerdictGoto:
		return "goto"
	}
	return fmt.Sprintf("verdict %d", k)
}

func metaKeyName(k expr.MetaKey) string {
	switch k {
	case expr.MetaKeyMARK:
		return "mark"
	case expr.MetaKeyL4PROTO:
		return "l4proto"
	case expr.MetaKeyNFPROTO:
		return "nfproto"
	case expr.MetaKeyIIFNAME:
		return "iifname"
	case expr.MetaKeyOIFNAME:
		return "oifname"
	}
	return fmt.Sprintf("key%d", k)
}

func ctKeyName(k expr.CtKey) string {
	switch k {
	case expr.CtKeyMARK:
		return "mark"
	case expr.CtKeySTATE:
		return "state"
	case expr.CtKeyDIRECTION:
		return "direction"
	case expr.CtKeySTATUS:
		return "status"
	}
	return fmt.Sprintf("key%d", k)
}
