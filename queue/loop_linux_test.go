package queue

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fakeKernel is the far end of a socketpair standing in for the kernel: it
// writes packet messages and reads back the verdicts, so the real
// recvmmsg/sendmsg loop runs without root.
type fakeKernel struct {
	t   testing.TB
	fd  int
	buf []byte
}

func newTestLoop(t testing.TB, c *Config) (*loop, *fakeKernel) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	if c == nil {
		c = &Config{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	rc, err := c.resolve()
	if err != nil {
		t.Fatal(err)
	}
	l := newLoop(fds[0], 1, &rc)
	k := &fakeKernel{t: t, fd: fds[1], buf: make([]byte, 1<<20)}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return l, k
}

func (k *fakeKernel) send(b []byte) {
	if _, err := unix.Write(k.fd, b); err != nil {
		k.t.Fatal(err)
	}
}

// verdicts reads every verdict datagram waiting on the socket.
func (k *fakeKernel) verdicts() (out []sentVerdict, datagrams int) {
	for {
		n, _, err := unix.Recvfrom(k.fd, k.buf, unix.MSG_DONTWAIT)
		if err == unix.EAGAIN {
			return out, datagrams
		}
		if err != nil {
			k.t.Fatal(err)
		}
		v, ok := parseVerdicts(k.buf[:n])
		if !ok {
			k.t.Fatalf("malformed verdict datagram % x", k.buf[:n])
		}
		out = append(out, v...)
		datagrams++
	}
}

// drainNoAlloc discards waiting verdicts; unix.Recvfrom would allocate a
// Sockaddr, so this uses a plain recv.
func (k *fakeKernel) drainNoAlloc() {
	for {
		_, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(k.fd), uintptr(unsafe.Pointer(&k.buf[0])),
			uintptr(len(k.buf)), unix.MSG_DONTWAIT, 0, 0)
		if e != 0 {
			return
		}
	}
}

func TestLoopBatchesAcceptRun(t *testing.T) {
	l, k := newTestLoop(t, nil)
	seen := 0
	l.h = func(p *Packet) {
		seen++
		if p.Queue != 1 || len(p.Payload) != 40 || p.Mark != 7 || p.InIf != 2 {
			t.Errorf("packet %+v", p)
		}
		p.Accept()
	}
	for id := uint32(1); id <= 10; id++ {
		k.send(pktMsg(1, id, 40))
	}
	if n, err := l.step(); n != 10 || err != nil {
		t.Fatalf("step: %d, %v (want all 10 in one recvmmsg)", n, err)
	}
	v, dgrams := k.verdicts()
	if seen != 10 || dgrams != 1 || len(v) != 1 || v[0].typ != msgVerdictBatch || v[0].id != 10 || v[0].verdict != nfAccept {
		t.Fatalf("seen %d, %d datagrams, verdicts %+v", seen, dgrams, v)
	}
	if l.c.received != 10 || l.c.accepted != 10 || l.c.batches != 1 || l.c.sendCalls != 1 || l.c.recvCalls != 1 {
		t.Fatalf("counters %+v", l.c)
	}
}

// TestLoopReceivedTime: every packet of a receive carries that receive's
// time, read once (the handler need not read the clock), and the next
// receive a later one.
func TestLoopReceivedTime(t *testing.T) {
	l, k := newTestLoop(t, nil)
	var got []time.Time
	l.h = func(p *Packet) {
		got = append(got, p.Received)
		p.Accept()
	}
	before := time.Now()
	for id := uint32(1); id <= 3; id++ {
		k.send(pktMsg(1, id, 10))
	}
	if n, err := l.step(); n != 3 || err != nil {
		t.Fatalf("step: %d, %v", n, err)
	}
	k.send(pktMsg(1, 4, 10))
	if n, err := l.step(); n != 1 || err != nil {
		t.Fatalf("step: %d, %v", n, err)
	}
	if len(got) != 4 || got[0].Before(before) || got[1] != got[0] || got[2] != got[0] || !got[3].After(got[0]) ||
		got[3].After(time.Now()) {
		t.Fatalf("receive times %v (the loop started at %v)", got, before)
	}
}

// TestLoopBatchDone: BatchDone runs once per receive, after the handler saw
// every packet of it and before their verdicts are sent.
func TestLoopBatchDone(t *testing.T) {
	var calls, seenAtDone int
	var k *fakeKernel
	seen := 0
	l, k := newTestLoop(t, &Config{BatchDone: func(q uint16) {
		calls++
		seenAtDone = seen
		if q != 1 {
			t.Errorf("BatchDone(%d), want queue 1", q)
		}
		if v, _ := k.verdicts(); len(v) != 0 {
			t.Errorf("verdicts sent before BatchDone: %+v", v)
		}
	}})
	l.h = func(p *Packet) { seen++; p.Accept() }
	for id := uint32(1); id <= 5; id++ {
		k.send(pktMsg(1, id, 10))
	}
	if n, err := l.step(); n != 5 || err != nil {
		t.Fatalf("step: %d, %v", n, err)
	}
	if calls != 1 || seenAtDone != 5 {
		t.Fatalf("BatchDone ran %d times, after %d packets; want once, after 5", calls, seenAtDone)
	}
	if v, _ := k.verdicts(); len(v) != 1 || v[0].id != 5 {
		t.Fatalf("verdicts after the batch: %+v", v)
	}
}

func TestLoopMixedVerdicts(t *testing.T) {
	l, k := newTestLoop(t, nil)
	l.h = func(p *Packet) {
		switch p.ID {
		case 1, 2:
			p.Accept()
		case 3:
			p.Drop()
		case 4:
			p.Accept()
			p.SetMark(0x42)
		case 5:
			p.QueueTo(9, true)
		case 6:
			p.Repeat()
			p.SetPayload(p.Payload[:20])
		case 7: // no verdict: default
		}
	}
	for id := uint32(1); id <= 7; id++ {
		k.send(pktMsg(1, id, 40))
	}
	if _, err := l.step(); err != nil {
		t.Fatal(err)
	}
	v, _ := k.verdicts()
	want := []sentVerdict{
		{typ: msgVerdictBatch, verdict: nfAccept, id: 2},
		{typ: msgVerdict, verdict: nfDrop, id: 3},
		{typ: msgVerdict, verdict: nfAccept, id: 4, mark: 0x42, hasMark: true},
		{typ: msgVerdict, verdict: 9<<16 | nfQueueBypassFlag | nfQueue, id: 5},
		{typ: msgVerdict, verdict: nfRepeat, id: 6, hasPayload: true},
		{typ: msgVerdict, verdict: nfAccept, id: 7},
	}
	if len(v) != len(want) {
		t.Fatalf("verdicts %+v", v)
	}
	for i := range v {
		g, w := v[i], want[i]
		if g.typ != w.typ || g.verdict != w.verdict || g.id != w.id || g.mark != w.mark || g.hasMark != w.hasMark || g.hasPayload != w.hasPayload {
			t.Errorf("verdict %d: %+v, want %+v", i, g, w)
		}
	}
	if len(v[4].payload) != 20 || v[4].payload[0] != 0x45 {
		t.Errorf("replaced payload % x", v[4].payload)
	}
	if l.c.defaulted != 1 || l.c.accepted != 4 || l.c.dropped != 1 || l.c.queued != 1 || l.c.repeated != 1 {
		t.Errorf("counters %+v", l.c)
	}
}

func TestLoopPanicAndDecodeErrorGetDefault(t *testing.T) {
	l, k := newTestLoop(t, &Config{DefaultVerdict: Drop, VerdictMode: Vectored})
	l.h = func(p *Packet) {
		p.Accept()
		p.SetMark(1)
		if p.ID == 2 {
			panic("handler bug")
		}
	}
	k.send(pktMsg(1, 1, 10))
	k.send(pktMsg(1, 2, 10))
	k.send(newMsg(msgPacket, 1).hdr(3, 0x800, 0).attr(attrMark, 1).done()) // bad mark: default
	k.send(newMsg(msgPacket, 1).done())                                    // no id: nothing to verdict
	k.send(pktMsg(1, 4, 10))
	if _, err := l.step(); err != nil {
		t.Fatal(err)
	}
	v, _ := k.verdicts()
	if len(v) != 4 {
		t.Fatalf("verdicts %+v", v)
	}
	wantV := []uint32{nfAccept, nfDrop, nfDrop, nfAccept}
	wantID := []uint32{1, 2, 3, 4}
	for i := range v {
		if v[i].verdict != wantV[i] || v[i].id != wantID[i] || v[i].typ != msgVerdict {
			t.Errorf("verdict %d: %+v", i, v[i])
		}
	}
	if v[1].hasMark {
		t.Error("a panicking handler's mark was kept")
	}
	if l.c.panics != 1 || l.c.decodeErrors != 2 || l.c.unverdictable != 1 || l.c.received != 5 {
		t.Errorf("counters %+v", l.c)
	}
}

func TestLoopPerPacketSendsEach(t *testing.T) {
	l, k := newTestLoop(t, &Config{VerdictMode: PerPacket})
	l.h = func(p *Packet) { p.Accept() }
	for id := uint32(1); id <= 5; id++ {
		k.send(pktMsg(1, id, 10))
	}
	if _, err := l.step(); err != nil {
		t.Fatal(err)
	}
	v, dgrams := k.verdicts()
	if dgrams != 5 || len(v) != 5 || l.c.sendCalls != 5 {
		t.Fatalf("%d datagrams, %d verdicts, %d sends", dgrams, len(v), l.c.sendCalls)
	}
}

func TestLoopFlushTimerWithSlowHandler(t *testing.T) {
	l, k := newTestLoop(t, &Config{FlushInterval: time.Millisecond})
	l.h = func(p *Packet) {
		time.Sleep(2 * time.Millisecond)
		p.Accept()
	}
	for id := uint32(1); id <= 12; id++ {
		k.send(pktMsg(1, id, 10))
	}
	if _, err := l.step(); err != nil {
		t.Fatal(err)
	}
	if _, dgrams := k.verdicts(); dgrams < 3 {
		t.Fatalf("%d sends for 12 slow packets: the flush timer did not fire", dgrams)
	}
}

func TestLoopMessagesInOneDatagram(t *testing.T) {
	// The kernel sends one packet per skb, but errors and packets must be
	// walked in any datagram.
	l, k := newTestLoop(t, nil)
	l.h = func(p *Packet) { p.Drop() }
	errMsg := make([]byte, 36)
	ne.PutUint32(errMsg[0:], 36)
	ne.PutUint16(errMsg[4:], nlmsgError)
	ne.PutUint32(errMsg[16:], uint32(0xfffffffe)) // -ENOENT: unknown packet id
	d := append(append(pktMsg(1, 1, 12), errMsg...), pktMsg(1, 2, 12)...)
	k.send(d)
	if _, err := l.step(); err != nil {
		t.Fatal(err)
	}
	v, _ := k.verdicts()
	if len(v) != 1 || v[0].id != 2 || v[0].typ != msgVerdictBatch || l.c.kernelErrs != 1 {
		t.Fatalf("verdicts %+v kernel errors %d", v, l.c.kernelErrs)
	}
}

func TestLoopShutdownDrains(t *testing.T) {
	l, k := newTestLoop(t, &Config{DrainIdle: 10 * time.Millisecond})
	for id := uint32(1); id <= 100; id++ {
		k.send(pktMsg(1, id, 10))
	}
	l.stop.Store(true) // Close before Run saw anything: all must still be verdicted
	if err := l.run(func(p *Packet) { p.Accept() }, -1); err != nil {
		t.Fatal(err)
	}
	v, _ := k.verdicts()
	last := uint32(0)
	for _, x := range v {
		last = max(last, x.id)
	}
	s := l.pub.load(1)
	if last != 100 || s.Received != 100 || s.Accepted != 100 {
		t.Fatalf("last verdict id %d, stats %+v", last, s)
	}
}

func TestLoopAllocs(t *testing.T) {
	for _, mode := range []VerdictMode{Batch, Vectored, PerPacket} {
		t.Run(mode.String(), func(t *testing.T) {
			l, k := newTestLoop(t, &Config{VerdictMode: mode, BatchSize: 16})
			l.h = func(p *Packet) {
				if p.ID%3 == 0 {
					p.Drop()
					return
				}
				p.Accept()
				p.SetMark(p.Mark)
			}
			msgs := make([][]byte, 16)
			for i := range msgs {
				msgs[i] = pktMsg(1, 0, 64)
			}
			id := uint32(0)
			allocs := testing.AllocsPerRun(200, func() {
				for i := range msgs {
					id++
					be.PutUint32(msgs[i][24:], id) // the packet id in NFQA_PACKET_HDR
					if _, err := unix.Write(k.fd, msgs[i]); err != nil {
						t.Fatal(err)
					}
				}
				if n, err := l.step(); n != 16 || err != nil {
					t.Fatalf("step %d %v", n, err)
				}
				k.drainNoAlloc()
			})
			if allocs != 0 {
				t.Fatalf("%.1f allocations per 16-packet receive -> handler -> verdict step", allocs)
			}
		})
	}
}

// BenchmarkLoop measures receive -> decode -> handler -> verdict over a
// socketpair (no kernel queue): the engine's own cost per packet.
func BenchmarkLoop(b *testing.B) {
	for _, mode := range []VerdictMode{Batch, Vectored, PerPacket} {
		b.Run(mode.String(), func(b *testing.B) {
			l, k := newTestLoop(b, &Config{VerdictMode: mode, BatchSize: 64})
			l.h = func(p *Packet) { p.Accept() }
			msgs := make([][]byte, 64)
			for i := range msgs {
				msgs[i] = pktMsg(1, 0, 64)
			}
			id := uint32(0)
			b.ReportAllocs()
			pkts := 0
			for b.Loop() {
				for i := range msgs {
					id++
					be.PutUint32(msgs[i][24:], id)
					if _, err := unix.Write(k.fd, msgs[i]); err != nil {
						b.Fatal(err)
					}
				}
				for got := 0; got < len(msgs); {
					n, err := l.step()
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
				pkts += len(msgs)
				k.drainNoAlloc()
			}
			b.ReportMetric(float64(pkts)/b.Elapsed().Seconds(), "pkts/s")
			b.ReportMetric(float64(l.c.syscalls)/float64(pkts), "syscalls/pkt")
		})
	}
}

func TestSlotStride(t *testing.T) {
	for _, slot := range []int{1, 64, 4096, 4224, recvSlotSize(&Config{CopyRange: nfqMaxCopyRange})} {
		s := slotStride(slot)
		if s < slot || s%64 != 0 || s%4096 == 0 || s-slot >= 64+5*64 {
			t.Errorf("slotStride(%d) = %d", slot, s)
		}
	}
}

// TestLoopQuiesce: quiesce asks for queue length 0 and verdicts what was
// queued before; only an acknowledged request ends the drain at the empty
// socket, a refused or unanswered one falls back to the idle drain and says
// so.
func TestLoopQuiesce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ack   []byte // queued after the packets, as the kernel would
		warns bool
	}{
		{"acknowledged", ackMsg(1, 0), false},
		{"refused", ackMsg(1, -int32(unix.EINVAL)), true},
		{"unanswered", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			l, k := newTestLoop(t, &Config{DrainIdle: 10 * time.Millisecond,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			l.sock = &sock{fd: l.fd, queue: 1}
			l.h = func(p *Packet) { p.Accept() }
			for id := uint32(1); id <= 50; id++ {
				k.send(pktMsg(1, id, 10))
			}
			if tc.ack != nil {
				k.send(tc.ack)
			}
			if err := l.quiesce(); err != nil {
				t.Fatal(err)
			}
			n, _, err := unix.Recvfrom(k.fd, k.buf, unix.MSG_DONTWAIT)
			if err != nil || !bytes.Equal(k.buf[:n], maxLenMsg(1, 1, 0)) {
				t.Fatalf("first message to the kernel: % x (%v), want the queue length 0 request", k.buf[:n], err)
			}
			v, _ := k.verdicts()
			last := uint32(0)
			for _, x := range v {
				last = max(last, x.id)
			}
			warned := strings.Contains(logs.String(), "did not take queue length 0")
			if last != 50 || l.c.accepted != 50 || warned != tc.warns {
				t.Fatalf("last verdict %d, accepted %d, warned %v (want 50, 50, %v): %s", last, l.c.accepted, warned, tc.warns, logs.String())
			}
			select {
			case <-l.quiesced:
			default:
				t.Fatal("quiesced not closed")
			}
			if err := l.quiesce(); err != nil { // the second call does nothing
				t.Fatal(err)
			}
			if n, _, _ := unix.Recvfrom(k.fd, k.buf, unix.MSG_DONTWAIT); n > 0 {
				t.Fatalf("second quiesce sent % x", k.buf[:n])
			}
		})
	}
}
