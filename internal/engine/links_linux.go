package engine

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/verdict"
)

// links names the interface indexes of the namespace the queues live in,
// for in_iface and out_iface: the table learns an index on its first packet
// (one RTM_GETLINK) and link notifications keep it true to renames and
// deletes. When notifications were lost (socket overrun) the table starts
// afresh and learns again. Both sockets are opened by New, on the thread
// that binds the queues, so they see the queues' namespace even when the
// rules live in another (Options.NetNS) or the process in a third.
type links struct {
	ifaces *verdict.Ifaces
	get    *netlink.Conn // RTM_GETLINK by index
	watch  *netlink.Conn // RTNLGRP_LINK notifications
	done   chan struct{}
}

func openLinks() (*links, error) {
	get, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink for interface names: %w", err)
	}
	watch, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Groups: 1 << (unix.RTNLGRP_LINK - 1)})
	if err != nil {
		get.Close()
		return nil, fmt.Errorf("subscribe to link notifications: %w", err)
	}
	l := &links{get: get, watch: watch}
	l.ifaces = verdict.NewIfaces(l.lookup)
	return l, nil
}

// lookup asks the kernel for the name of one index (off the hot path: once
// per index).
func (l *links) lookup(index uint32) (string, error) {
	req := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(req[4:8], index)
	msgs, err := l.get.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request},
		Data:   req,
	})
	if err != nil {
		return "", err
	}
	for _, m := range msgs {
		if i, name, ok := parseLink(m); ok && i == index {
			return name, nil
		}
	}
	return "", errors.New("no name in the kernel's answer")
}

// start follows the notifications until stop.
func (l *links) start() {
	l.done = make(chan struct{})
	go func() {
		defer close(l.done)
		for {
			msgs, err := l.watch.Receive()
			if errors.Is(err, unix.ENOBUFS) {
				l.ifaces.Reset()
				continue
			}
			if err != nil {
				return // closed
			}
			for _, m := range msgs {
				switch i, name, ok := parseLink(m); {
				case ok && m.Header.Type == unix.RTM_DELLINK:
					l.ifaces.Delete(i)
				case ok && m.Header.Type == unix.RTM_NEWLINK:
					l.ifaces.Set(i, name)
				}
			}
		}
	}()
}

func (l *links) close() {
	if l == nil {
		return
	}
	l.watch.Close()
	if l.done != nil {
		<-l.done
	}
	l.get.Close()
}

// parseLink reads an RTM_NEWLINK or RTM_DELLINK message: struct ifinfomsg
// (16 bytes, the index at 4) and attributes, IFLA_IFNAME among them.
func parseLink(m netlink.Message) (index uint32, name string, ok bool) {
	t := m.Header.Type
	if (t != unix.RTM_NEWLINK && t != unix.RTM_DELLINK) || len(m.Data) < unix.SizeofIfInfomsg {
		return 0, "", false
	}
	index = binary.NativeEndian.Uint32(m.Data[4:8])
	ad, err := netlink.NewAttributeDecoder(m.Data[unix.SizeofIfInfomsg:])
	if err != nil {
		return index, "", t == unix.RTM_DELLINK
	}
	for ad.Next() {
		if ad.Type() == unix.IFLA_IFNAME {
			return index, ad.String(), true
		}
	}
	return index, "", t == unix.RTM_DELLINK
}
