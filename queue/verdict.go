package queue

import "github.com/qguard/qguard/internal/enumtext"

// Verdict is what happens to a queued packet.
type Verdict uint8

// Verdicts. The zero value is invalid on purpose: a handler that sets none
// leaves the packet to Config.DefaultVerdict.
const (
	VerdictUnset Verdict = iota
	// Accept lets the packet continue to the next hook function.
	Accept
	// Drop discards the packet.
	Drop
	// Repeat makes the packet traverse the current hook again from the
	// start; set a mark that the queueing rule skips, or it loops.
	Repeat
	// Queue hands the packet to another queue (Packet.QueueTo).
	Queue
)

var verdictNames = [...]string{"unset", "accept", "drop", "repeat", "queue"}

// String returns the verdict's lower-case name.
func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "invalid"
}

// MarshalText returns String's name.
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText parses "accept" or "drop": the verdicts that stand on their
// own, as Config.DefaultVerdict must. Repeat and Queue need a mark or a
// queue number beside them and are set by code, not text.
func (v *Verdict) UnmarshalText(b []byte) error {
	return enumtext.Set(v, b, "verdict", ErrConfig, "", "accept", "drop")
}

func (v Verdict) valid() bool { return v >= Accept && v <= Queue }

// VerdictMode chooses how verdicts go back to the kernel.
type VerdictMode uint8

// Verdict modes. The zero value selects Batch.
const (
	VerdictModeDefault VerdictMode = iota
	// Batch collapses runs of in-order packets with the same verdict and
	// mark into one NFQNL_MSG_VERDICT_BATCH and sends many messages per
	// sendmsg.
	Batch
	// Vectored sends one NFQNL_MSG_VERDICT per packet, many per sendmsg.
	Vectored
	// PerPacket sends each verdict with its own sendmsg as soon as the
	// handler returns.
	PerPacket
)

// modeNames are the modes' text forms (the configuration file's
// queue.verdict_mode); the default has none.
var modeNames = [...]string{"", "batch", "vectored", "per-packet"}

// String returns the mode's name ("default" for VerdictModeDefault).
func (m VerdictMode) String() string {
	switch {
	case m == VerdictModeDefault:
		return "default"
	case int(m) < len(modeNames):
		return modeNames[m]
	}
	return "invalid"
}

// MarshalText returns String's name.
func (m VerdictMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses "batch", "vectored" or "per-packet".
func (m *VerdictMode) UnmarshalText(b []byte) error {
	return enumtext.Set(m, b, "verdict mode", ErrConfig, modeNames[:]...)
}

// Accept sets the verdict to Accept.
func (p *Packet) Accept() { p.verdict = Accept }

// Drop sets the verdict to Drop.
func (p *Packet) Drop() { p.verdict = Drop }

// Repeat sets the verdict to Repeat: the packet re-enters the hook.
func (p *Packet) Repeat() { p.verdict = Repeat }

// QueueTo hands the packet to queue num. With bypass, the kernel accepts the
// packet when no program is bound to num; without, it drops it.
func (p *Packet) QueueTo(num uint16, bypass bool) {
	p.verdict = Queue
	p.toQueue = num
	p.bypass = bypass
}

// SetMark sets the packet mark together with the verdict.
func (p *Packet) SetMark(m uint32) {
	p.newMark = m
	p.setMark = true
}

// SetPayload replaces the packet with b (from the network header on). The
// engine copies b before the handler returns, so b must stay valid only
// until then. The caller fixes IP and transport checksums: the kernel marks
// a replaced packet CHECKSUM_NONE and does not recompute them. A payload
// longer than 65531 bytes cannot be carried by a netlink attribute; such a
// packet is dropped and counted in Stats.PayloadErrors.
func (p *Packet) SetPayload(b []byte) {
	p.newPayload = b
	p.hasPayload = true
}

// Verdict returns the verdict set so far (VerdictUnset if none).
func (p *Packet) Verdict() Verdict { return p.verdict }

// NewMark returns the mark set with SetMark and whether one was set.
func (p *Packet) NewMark() (uint32, bool) { return p.newMark, p.setMark }

// kernelVerdict encodes v for struct nfqnl_msg_verdict_hdr.
func kernelVerdict(v Verdict, toQueue uint16, bypass bool) uint32 {
	switch v {
	case Accept:
		return nfAccept
	case Drop:
		return nfDrop
	case Repeat:
		return nfRepeat
	case Queue:
		k := uint32(toQueue)<<16 | nfQueue // NF_QUEUE_NR(num)
		if bypass {
			k |= nfQueueBypassFlag
		}
		return k
	}
	return nfDrop
}
