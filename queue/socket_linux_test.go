package queue

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// ackMsg is an NLMSG_ERROR reply to seq carrying errno (0: an ACK).
func ackMsg(seq uint32, errno int32) []byte {
	b := make([]byte, 16+4+16)
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], nlmsgError)
	ne.PutUint32(b[16:], uint32(errno))
	ne.PutUint32(b[20+8:], seq)
	return b
}

func TestRequestStashesPacketsBeforeTheAck(t *testing.T) {
	l, k := newTestLoop(t, nil)
	s := &sock{fd: l.fd, queue: 1, rbuf: make([]byte, 1<<16)}
	l.sock = s
	k.send(pktMsg(1, 5, 10))
	k.send(ackMsg(99, -int32(unix.EBUSY))) // someone else's sequence number: ignored
	k.send(pktMsg(1, 6, 10))
	k.send(ackMsg(1, 0))
	if err := s.request(unbindMsg(1, s.nextSeq())); err != nil {
		t.Fatal(err)
	}
	if len(s.stash) != 2 {
		t.Fatalf("stashed %d datagrams, want 2", len(s.stash))
	}
	n, err := unix.Read(k.fd, k.buf)
	if err != nil || n != 28 || ne.Uint16(k.buf[4:]) != msgConfig {
		t.Fatalf("request on the wire: % x (%v)", k.buf[:n], err)
	}
	l.h = func(p *Packet) { p.Accept() }
	l.takeStash()
	v, _ := k.verdicts()
	if len(v) != 1 || v[0].id != 6 || v[0].typ != msgVerdictBatch {
		t.Fatalf("stashed packets' verdicts %+v", v)
	}
}

func TestRequestReturnsKernelError(t *testing.T) {
	l, k := newTestLoop(t, nil)
	s := &sock{fd: l.fd, queue: 7, rbuf: make([]byte, 1<<16)}
	k.send(ackMsg(1, -int32(unix.EBUSY)))
	err := s.request(bindMsg(7, s.nextSeq(), l.cfg))
	if !errors.Is(err, unix.EBUSY) {
		t.Fatalf("err %v, want EBUSY", err)
	}
	if err := mapBindErr(err, 7, 1); !errors.Is(err, ErrQueueBusy) || !errors.Is(err, unix.EBUSY) {
		t.Fatalf("mapped %v", err)
	}
	if err := mapBindErr(unix.EOPNOTSUPP, 7, 1); !errors.Is(err, ErrFlagUnsupported) {
		t.Fatalf("mapped %v", err)
	}
	if err := mapErrno(unix.EPROTONOSUPPORT, 7); !errors.Is(err, ErrNoNFQueue) {
		t.Fatalf("mapped %v", err)
	}
}
