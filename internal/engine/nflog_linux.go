package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/rules"
	"github.com/qguard/qguard/verdict/packet"
)

// nflog reads the log lines of the rules the kernel decides (rule option
// log in mode kernel-first: `log group G prefix "qguard <action> <rule>"`)
// from nfnetlink_log and writes each as a "decision" line of the daemon's
// log, the line user space writes for the rules it decides, with
// kernel=true. The socket is opened in the rules' namespace. Only one
// listener can bind a group in a namespace: when another holds it, the
// daemon says so and the kernel's lines go to that listener.
type nflog struct {
	c    *netlink.Conn
	log  *slog.Logger
	done chan struct{}
}

// nfnetlink_log, linux/netfilter/nfnetlink_log.h.
const (
	nfnlSubsysULOG   = 4 // NFNL_SUBSYS_ULOG
	nfulnlMsgPacket  = 0 // NFULNL_MSG_PACKET
	nfulnlMsgConfig  = 1 // NFULNL_MSG_CONFIG
	nfulaCfgCmd      = 1 // NFULA_CFG_CMD: struct nfulnl_msg_config_cmd { __u8 command; }
	nfulaCfgMode     = 2 // NFULA_CFG_MODE: struct nfulnl_msg_config_mode { __be32 copy_range; __u8 copy_mode; __u8 _pad; }
	nfulaCfgQthresh  = 5 // NFULA_CFG_QTHRESH: __be32
	nfulnlCfgBind    = 1 // NFULNL_CFG_CMD_BIND
	nfulnlCopyPacket = 2 // NFULNL_COPY_PACKET
	nfulaPayload     = 9 // NFULA_PAYLOAD: the packet from its network header
	nfulaPrefix      = 10
)

// openNflog binds group in the namespace netnsFd (0: the calling thread's).
func openNflog(netnsFd int, group uint16, log *slog.Logger) (*nflog, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netnsFd})
	if err != nil {
		return nil, fmt.Errorf("open nflog: %w", err)
	}
	mode := binary.BigEndian.AppendUint32(nil, 128)
	mode = append(mode, nfulnlCopyPacket, 0)
	for _, attrs := range [][]netlink.Attribute{
		{{Type: nfulaCfgCmd, Data: []byte{nfulnlCfgBind}}},
		// Every line at once: the default waits for 100 or a second.
		{{Type: nfulaCfgMode, Data: mode}, {Type: nfulaCfgQthresh, Data: binary.BigEndian.AppendUint32(nil, 1)}},
	} {
		b, err := netlink.MarshalAttributes(attrs)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("bind nflog group %d: %w", group, err)
		}
		// struct nfgenmsg: family AF_UNSPEC, version 0, res_id the group.
		data := append([]byte{unix.AF_UNSPEC, 0}, binary.BigEndian.AppendUint16(nil, group)...)
		if _, err := c.Execute(netlink.Message{
			Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysULOG<<8 | nfulnlMsgConfig), Flags: netlink.Request | netlink.Acknowledge},
			Data:   append(data, b...),
		}); err != nil {
			c.Close()
			return nil, fmt.Errorf("bind nflog group %d: %w", group, err)
		}
	}
	return &nflog{c: c, log: log}, nil
}

func (n *nflog) start() {
	n.done = make(chan struct{})
	go func() {
		defer close(n.done)
		for {
			msgs, err := n.c.Receive()
			if errors.Is(err, unix.ENOBUFS) {
				continue // lines lost to a full socket: the kernel's limit bounds them, this is rare
			}
			if err != nil {
				return // closed
			}
			for _, m := range msgs {
				n.line(m)
			}
		}
	}()
}

// line writes one NFULNL_MSG_PACKET as a decision line.
func (n *nflog) line(m netlink.Message) {
	if m.Header.Type != netlink.HeaderType(nfnlSubsysULOG<<8|nfulnlMsgPacket) || len(m.Data) < 4 {
		return
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return
	}
	var prefix string
	var payload []byte
	for ad.Next() {
		switch ad.Type() {
		case nfulaPrefix:
			prefix = ad.String()
		case nfulaPayload:
			payload = ad.Bytes()
		}
	}
	action, rule, ok := parseLogPrefix(prefix)
	if !ok {
		return
	}
	var p packet.Packet
	packet.Decode(payload, &p)
	n.log.LogAttrs(context.Background(), slog.LevelInfo, "decision",
		slog.String("rule", rule), slog.String("action", action),
		slog.Int("proto", int(p.Proto)),
		slog.String("src", p.Src.String()), slog.Int("sport", int(p.SrcPort)),
		slog.String("dst", p.Dst.String()), slog.Int("dport", int(p.DstPort)),
		slog.Bool("kernel", true))
}

// parseLogPrefix splits a prefix made by rules.LogPrefix.
func parseLogPrefix(s string) (action, rule string, ok bool) {
	rest, ok := strings.CutPrefix(s, "qguard ")
	if !ok {
		return "", "", false
	}
	action, rule, ok = strings.Cut(rest, " ")
	return action, rule, ok
}

func (n *nflog) close() {
	if n == nil {
		return
	}
	n.c.Close()
	if n.done != nil {
		<-n.done
	}
}

// nflogGroup is the group the kernel's log lines go to, ok false when the
// table has no kernel policy.
func nflogGroup(c *rules.Config) (uint16, bool) {
	if c == nil || c.Mode != rules.KernelFirst || c.Policy == nil {
		return 0, false
	}
	return c.Policy.Group(), true
}

// openNflog binds the group of c's kernel policy, if any. A group another
// listener holds is no error: the policy runs the same, and the daemon says
// where its lines went.
func (e *Engine) openNflog(c *rules.Config) {
	g, ok := nflogGroup(c)
	if !ok {
		return
	}
	n, err := openNflog(e.opts.NetNS, g, e.log)
	if err != nil {
		e.log.Warn("the kernel's log lines (rule option log) are not in this log", "nflog_group", g, "err", err)
		return
	}
	e.nflog = n
}
