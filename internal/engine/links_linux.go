package engine

import (
	"encoding/binary"
	"errors"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/verdict"
)

// linkWatch keeps verdict.SystemIfaces true to renamed and deleted links
// of the namespace the queues live in, from link notifications. The table
// learns a new index on its first packet (one lookup); what changes an
// index's name afterwards is a rename or a delete, which the notifications
// tell. When notifications were lost (socket overrun), the table starts
// afresh and learns again.
type linkWatch struct {
	c    *netlink.Conn
	done chan struct{}
}

// startLinkWatch subscribes to link notifications; errors leave names as
// found on each index's first packet.
func (e *Engine) startLinkWatch() *linkWatch {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Groups: 1 << (unix.RTNLGRP_LINK - 1)})
	if err != nil {
		e.log.Warn("no link notifications: a renamed interface keeps its old name for in_iface/out_iface", "err", err)
		return nil
	}
	ifs := verdict.SystemIfaces()
	ifs.Reset() // what was learned before the subscription may be stale
	w := &linkWatch{c: c, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			msgs, err := c.Receive()
			if errors.Is(err, unix.ENOBUFS) {
				ifs.Reset()
				continue
			}
			if err != nil {
				return // closed
			}
			for _, m := range msgs {
				applyLink(ifs, m)
			}
		}
	}()
	return w
}

func (w *linkWatch) stop() {
	if w == nil {
		return
	}
	w.c.Close()
	<-w.done
}

// applyLink applies one RTM_NEWLINK or RTM_DELLINK message: struct
// ifinfomsg (16 bytes, index at 4) and attributes, IFLA_IFNAME among them.
func applyLink(ifs *verdict.Ifaces, m netlink.Message) {
	t := m.Header.Type
	if (t != unix.RTM_NEWLINK && t != unix.RTM_DELLINK) || len(m.Data) < unix.SizeofIfInfomsg {
		return
	}
	index := binary.NativeEndian.Uint32(m.Data[4:8])
	if t == unix.RTM_DELLINK {
		ifs.Delete(index)
		return
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[unix.SizeofIfInfomsg:])
	if err != nil {
		return
	}
	for ad.Next() {
		if ad.Type() == unix.IFLA_IFNAME {
			ifs.Set(index, ad.String())
			return
		}
	}
}
