package engine

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ctEvent is a conntrack destroy event: the original tuple (the
// initiator's direction) and, when the kernel accounts them, packets and
// bytes of each direction ([0] original, [1] reply).
type ctEvent struct {
	t            int64 // when it was read, Unix nanoseconds
	proto        uint8
	src, dst     netip.Addr
	sport, dport uint16
	counters     bool
	pkts, bytes  [2]uint64
	start, stop  uint64 // CTA_TIMESTAMP, nanoseconds; 0 without nf_conntrack_timestamp
}

// ctnetlink numbers (linux/netfilter/nfnetlink_conntrack.h).
const (
	nfnlSubsysCT       = 1
	ctMsgDelete        = 2
	nfnlGrpCTDestroy   = 3
	ctaTupleOrig       = 1
	ctaCountersOrig    = 9
	ctaCountersReply   = 10
	ctaTimestamp       = 20
	ctaTupleIP         = 1
	ctaTupleProto      = 2
	ctaIPv4Src         = 1
	ctaIPv4Dst         = 2
	ctaIPv6Src         = 3
	ctaIPv6Dst         = 4
	ctaProtoNum        = 1
	ctaProtoSrcPort    = 2
	ctaProtoDstPort    = 3
	ctaCountersPackets = 1
	ctaCountersBytes   = 2
	ctaTimestampStart  = 1
	ctaTimestampStop   = 2
)

// conntrackWatch follows conntrack destroy events of the calling thread's
// namespace (opened by New beside the queues) into ch until closed.
type conntrackWatch struct {
	c       *netlink.Conn
	done    chan struct{}
	started bool // start and close run under Engine.reloadMu
}

func openConntrack() (*conntrackWatch, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{Groups: 1 << (nfnlGrpCTDestroy - 1)})
	if err != nil {
		return nil, fmt.Errorf("subscribe to conntrack destroy events for record.flows: %w", err)
	}
	return &conntrackWatch{c: c, done: make(chan struct{})}, nil
}

func (w *conntrackWatch) start(ch chan<- ctEvent) {
	w.started = true
	go func() {
		defer close(w.done)
		for {
			msgs, err := w.c.Receive()
			if err != nil {
				if err == unix.ENOBUFS || isENOBUFS(err) {
					continue // events lost: those flows end without a record
				}
				return
			}
			for _, m := range msgs {
				if ev, ok := parseCTDestroy(m); ok {
					select {
					case ch <- ev:
					default: // the writer is behind: this flow ends without a record
					}
				}
			}
		}
	}()
}

func isENOBUFS(err error) bool {
	type unwrapper interface{ Unwrap() error }
	for err != nil {
		if err == unix.ENOBUFS {
			return true
		}
		u, ok := err.(unwrapper)
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func (w *conntrackWatch) close() {
	if w == nil {
		return
	}
	w.c.Close()
	if w.started {
		<-w.done
	}
}

func parseCTDestroy(m netlink.Message) (ctEvent, bool) {
	ev := ctEvent{t: time.Now().UnixNano()}
	if m.Header.Type != netlink.HeaderType(nfnlSubsysCT<<8|ctMsgDelete) || len(m.Data) < 4 {
		return ev, false
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:]) // after struct nfgenmsg
	if err != nil {
		return ev, false
	}
	ad.ByteOrder = binary.BigEndian
	tuple := false
	for ad.Next() {
		switch ad.Type() {
		case ctaTupleOrig:
			ad.Nested(func(t *netlink.AttributeDecoder) error {
				tuple = parseCTTuple(t, &ev)
				return nil
			})
		case ctaCountersOrig, ctaCountersReply:
			i := 0
			if ad.Type() == ctaCountersReply {
				i = 1
			}
			ad.Nested(func(c *netlink.AttributeDecoder) error {
				c.ByteOrder = binary.BigEndian
				for c.Next() {
					switch c.Type() {
					case ctaCountersPackets:
						ev.pkts[i], ev.counters = c.Uint64(), true
					case ctaCountersBytes:
						ev.bytes[i] = c.Uint64()
					}
				}
				return nil
			})
		case ctaTimestamp:
			ad.Nested(func(c *netlink.AttributeDecoder) error {
				c.ByteOrder = binary.BigEndian
				for c.Next() {
					switch c.Type() {
					case ctaTimestampStart:
						ev.start = c.Uint64()
					case ctaTimestampStop:
						ev.stop = c.Uint64()
					}
				}
				return nil
			})
		}
	}
	return ev, tuple && ad.Err() == nil
}

func parseCTTuple(t *netlink.AttributeDecoder, ev *ctEvent) bool {
	t.ByteOrder = binary.BigEndian
	ok := false
	for t.Next() {
		switch t.Type() {
		case ctaTupleIP:
			t.Nested(func(a *netlink.AttributeDecoder) error {
				for a.Next() {
					b := a.Bytes()
					addr, _ := netip.AddrFromSlice(b)
					switch a.Type() {
					case ctaIPv4Src, ctaIPv6Src:
						ev.src = addr
					case ctaIPv4Dst, ctaIPv6Dst:
						ev.dst = addr
					}
				}
				return nil
			})
			ok = ev.src.IsValid() && ev.dst.IsValid()
		case ctaTupleProto:
			t.Nested(func(p *netlink.AttributeDecoder) error {
				p.ByteOrder = binary.BigEndian
				for p.Next() {
					switch p.Type() {
					case ctaProtoNum:
						ev.proto = p.Uint8()
					case ctaProtoSrcPort:
						ev.sport = p.Uint16()
					case ctaProtoDstPort:
						ev.dport = p.Uint16()
					}
				}
				return nil
			})
		}
	}
	return ok
}
