package rules

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/topo"
	"golang.org/x/sys/unix"
)

// rawQueue is a bare nfnetlink_queue socket for tests that hold packets:
// it receives without answering, and gives each verdict with NLM_F_ACK so
// the kernel says whether it still had the packet (ENOENT once the packet
// was flushed, e.g. by nf_queue_nf_hook_drop when a hook is unregistered).
// The queue package answers every packet at once, which is what the
// daemon needs and these tests must not do.
type rawQueue struct {
	fd  int
	num uint16
	seq uint32
	// held are the packets received and not yet answered, in order.
	held []heldPacket
}

type heldPacket struct {
	id      uint32
	payload []byte
}

// Wire values from linux/netfilter/nfnetlink_queue.h (see queue/wire.go).
const (
	rqMsgPacket   = 3<<8 | 0 // NFQNL_MSG_PACKET
	rqMsgVerdict  = 3<<8 | 1 // NFQNL_MSG_VERDICT
	rqMsgConfig   = 3<<8 | 2 // NFQNL_MSG_CONFIG
	rqPacketHdr   = 1        // NFQA_PACKET_HDR
	rqVerdictHdr  = 2        // NFQA_VERDICT_HDR
	rqPayload     = 10       // NFQA_PAYLOAD
	rqCfgCmd      = 1        // NFQA_CFG_CMD
	rqCfgParams   = 2        // NFQA_CFG_PARAMS
	rqCfgMaxLen   = 3        // NFQA_CFG_QUEUE_MAXLEN
	rqCmdBind     = 1        // NFQNL_CFG_CMD_BIND
	rqCopyPacket  = 2        // NFQNL_COPY_PACKET
	rqVerdictAcpt = 1        // NF_ACCEPT
)

// openRawQueue binds queue num in ns until the test ends.
func openRawQueue(t testing.TB, ns topo.NS, num uint16) *rawQueue {
	t.Helper()
	q := &rawQueue{num: num}
	err := ns.Do(func() (err error) {
		q.fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return err
		}
		return unix.Bind(q.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	})
	if err != nil {
		t.Fatalf("open nfnetlink socket: %v", err)
	}
	t.Cleanup(func() { _ = unix.Close(q.fd) })
	_ = unix.SetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	tv := unix.NsecToTimeval((20 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(q.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	cmd := []byte{rqCmdBind, 0, 0, 0} // command, pad, pf (unused)
	if err := q.request(rqMsgConfig, nla(rqCfgCmd, cmd)); err != nil {
		t.Fatalf("bind queue %d: %v", num, err)
	}
	params := append(binary.BigEndian.AppendUint32(nil, 0xffff), rqCopyPacket)
	if err := q.request(rqMsgConfig, append(nla(rqCfgParams, params), nla(rqCfgMaxLen, binary.BigEndian.AppendUint32(nil, 8192))...)); err != nil {
		t.Fatalf("configure queue %d: %v", num, err)
	}
	return q
}

// request sends one message with NLM_F_ACK and returns the kernel's
// answer; packet messages that arrive meanwhile are held.
func (q *rawQueue) request(typ uint16, attrs []byte) error {
	q.seq++
	b := make([]byte, 20, 20+len(attrs))
	binary.NativeEndian.PutUint32(b[0:], uint32(20+len(attrs)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(b[8:], q.seq)
	b[16] = unix.AF_UNSPEC
	binary.BigEndian.PutUint16(b[18:], q.num)
	b = append(b, attrs...)
	if err := unix.Sendto(q.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		errno, ok, err := q.recv(q.seq)
		if err != nil {
			return err
		}
		if ok {
			if errno != 0 {
				return syscall.Errno(errno)
			}
			return nil
		}
	}
	return fmt.Errorf("no answer to message %d", q.seq)
}

// recv reads one datagram, holding its packets; ok reports an NLMSG_ERROR
// answer to seq (errno 0 is an ack).
func (q *rawQueue) recv(seq uint32) (errno int32, ok bool, err error) {
	buf := make([]byte, 1<<16)
	n, _, err := unix.Recvfrom(q.fd, buf, 0)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("receive: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return 0, false, fmt.Errorf("parse: %w", err)
	}
	for _, m := range msgs {
		switch m.Header.Type {
		case unix.NLMSG_ERROR:
			if m.Header.Seq == seq && len(m.Data) >= 4 {
				return -int32(binary.NativeEndian.Uint32(m.Data)), true, nil
			}
		case rqMsgPacket:
			if p, ok := parseHeld(m.Data); ok {
				q.held = append(q.held, p)
			}
		}
	}
	return 0, false, nil
}

func parseHeld(b []byte) (heldPacket, bool) {
	var p heldPacket
	var hasID bool
	for b = b[4:]; len(b) >= 4; {
		l := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) & 0x3fff
		if l < 4 || l > len(b) {
			break
		}
		v := b[4:l]
		switch {
		case typ == rqPacketHdr && len(v) >= 4:
			p.id, hasID = binary.BigEndian.Uint32(v), true
		case typ == rqPayload:
			p.payload = append([]byte(nil), v...)
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return p, hasID
}

// hold reads until n packets are held or wait passed.
func (q *rawQueue) hold(t testing.TB, n int, wait time.Duration) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for len(q.held) < n && time.Now().Before(deadline) {
		if _, _, err := q.recv(0); err != nil {
			t.Fatal(err)
		}
	}
	if len(q.held) < n {
		t.Fatalf("queue %d: %d packets held, want %d", q.num, len(q.held), n)
	}
}

// acceptAll gives every held packet NF_ACCEPT and returns how many
// verdicts the kernel refused, with the first error.
func (q *rawQueue) acceptAll() (refused int, first error) {
	held := q.held
	q.held = nil
	for _, p := range held {
		v := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, rqVerdictAcpt), p.id)
		if err := q.request(rqMsgVerdict, nla(rqVerdictHdr, v)); err != nil {
			refused++
			if first == nil {
				first = fmt.Errorf("verdict for packet %d: %w", p.id, err)
			}
		}
	}
	return refused, first
}
