package rules

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// nameNote is the comment of the rules queueing DNS for the names; Queues
// counts them as steering (the engine's fail-open estimate).
var nameNote = queueNote("dns", "dst_name and src_name read the answers")

// nameDNSRules queues the TCP and UDP packets to and from Config.NamePorts
// (queries and answers), ahead of everything that could accept them in
// the kernel: user space must see both to bind an answer, and an answer
// belongs to a flow whose first packet is decided already.
func (b *builder) nameDNSRules(ch *nftables.Chain, steerAway bool) error {
	if len(b.cfg.NamePorts) == 0 {
		return nil
	}
	for _, src := range []bool{false, true} {
		ifs, err := b.steerIfMatch()
		if err != nil {
			return err
		}
		protos, err := b.match(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, nftables.TypeInetProto,
			[][]byte{{unix.IPPROTO_TCP}, {unix.IPPROTO_UDP}})
		if err != nil {
			return err
		}
		ports, err := b.portMatch(src, b.cfg.NamePorts)
		if err != nil {
			return err
		}
		// A packet re-injected with a qguard mark is never queued again.
		b.rule(ch, nameNote, ifs, protos, ports, maskedEq(metaMark(), b.cfg.Marks.Mask, 0),
			one(&expr.Counter{}, b.queueVerdict(steerAway)))
	}
	return nil
}

func checkNamePorts(ps []PortRange) error {
	for _, p := range ps {
		if p.Hi < p.Lo {
			return fmt.Errorf("%w: name port range %d-%d ends before it starts", ErrInvalidConfig, p.Lo, p.Hi)
		}
	}
	return nil
}
