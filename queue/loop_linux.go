package queue

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// sendBufSize is the socket send buffer: a sendmsg larger than it
	// fails with EMSGSIZE, so flushAt stays well below.
	sendBufSize = 4 << 20
	flushAt     = 256 << 10
	// slotSlack is room for everything but the payload in a packet
	// message: headers, interfaces, timestamps, conntrack, security context.
	slotSlack = 4096
	// pollInterval is how often an idle loop looks at its stop flag.
	pollInterval = 100 * time.Millisecond
	// retryPause slows a loop down after an unexpected receive error so a
	// persistent one does not spin.
	retryPause = 10 * time.Millisecond
	// timeCheckEvery: the flush timer is looked at every this many packets.
	timeCheckEvery = 4
)

func recvSlotSize(c *Config) int { return align4(int(c.CopyRange)) + slotSlack }

// slotStride is the distance between receive slots: the slot rounded up
// to a cache line, moved off a page multiple (the default slot is exactly
// 17 pages) by an odd number of lines, so the slots of one recvmmsg do not
// all start in the same cache sets. (The bench's drain phase did not show
// a difference either way on the development VM.)
func slotStride(slot int) int {
	s := (slot + 63) &^ 63
	if s%4096 == 0 {
		s += 5 * 64
	}
	return s
}

// loop is one queue's receive -> handler -> verdict loop. Only its own
// goroutine touches it, except stop and pub.
type loop struct {
	fd    int
	queue uint16
	cfg   *Config
	sock  *sock // nil in tests over a socketpair
	h     Handler

	slot   int // usable bytes per receive slot
	stride int // distance between slots (slotStride)
	buf    []byte
	iov    []unix.Iovec
	mm     []unix.Mmsghdr

	enc       *encoder
	pkt       Packet
	pending   int
	pendSince time.Time
	// recvAt is when the last receive returned (Packet.Received); fresh
	// says no verdict was flushed since, so the first pending verdict may
	// take that time instead of reading the clock again.
	recvAt time.Time
	fresh  bool

	c   counters
	pub statsCell

	// beforeUnbind, when set, runs once the queue is drained: Queues keeps
	// the kernel's last counters, which vanish with the unbind.
	beforeUnbind func()

	// quiesceReq asks the loop to quiesce (Queues.Quiesce); quiesced is
	// closed once it did, or once the loop ended without.
	quiesceReq atomic.Bool
	quiesced   chan struct{}
	quiesceSeq uint32 // sequence number of the queue length 0 request
	quiesceAck bool   // its acknowledgement arrived
	quiesceErr int32  // with this error (0: applied)

	dry     bool // the last receive emptied the socket
	busy    bool // the last receive found a backlog (more than one packet)
	stop    atomic.Bool
	halted  chan struct{} // closed with stop set (halt)
	once    sync.Once
	limits  [nLogKinds]limiter
	flushes uint64
}

func newLoop(fd int, queue uint16, c *Config) *loop {
	n := c.BatchSize
	l := &loop{fd: fd, queue: queue, cfg: c, slot: recvSlotSize(c), quiesced: make(chan struct{}),
		halted: make(chan struct{})}
	l.stride = slotStride(l.slot)
	l.buf = make([]byte, n*l.stride)
	l.iov = make([]unix.Iovec, n)
	l.mm = make([]unix.Mmsghdr, n)
	for i := range n {
		l.iov[i].Base = &l.buf[i*l.stride]
		l.iov[i].SetLen(l.slot)
		l.mm[i].Hdr.Iov = &l.iov[i]
		l.mm[i].Hdr.SetIovlen(1)
	}
	l.enc = newEncoder(queue, c.VerdictMode, flushAt+64<<10)
	return l
}

// recv reads up to BatchSize messages with one recvmmsg. A call that
// cannot block (MSG_DONTWAIT) goes through RawSyscall: it keeps the
// goroutine's P, so under load the loop never waits for the scheduler to
// hand a P back after a system call (Go threads of the same process, a
// traffic generator say, would otherwise take it). A blocking call must
// release the P and uses Syscall.
func (l *loop) recv(flags int) (int, error) {
	var n uintptr
	var e unix.Errno
	if flags&unix.MSG_DONTWAIT != 0 {
		n, _, e = unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(l.fd), uintptr(unsafe.Pointer(&l.mm[0])),
			uintptr(len(l.mm)), uintptr(flags), 0, 0)
	} else {
		n, _, e = unix.Syscall6(unix.SYS_RECVMMSG, uintptr(l.fd), uintptr(unsafe.Pointer(&l.mm[0])),
			uintptr(len(l.mm)), uintptr(flags), 0, 0)
	}
	l.c.syscalls++
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// step reads what is queued on the socket without blocking; only when the
// socket is dry does it block for at least one message (or the receive
// timeout), taking whatever else arrived with it (MSG_WAITFORONE). It runs
// the handler on every packet and flushes the verdicts: the socket ran dry
// or the vector is full, and either way nothing waits longer.
func (l *loop) step() (int, error) {
	var n int
	var err error = unix.EAGAIN
	switch {
	case !l.dry:
		n, err = l.recv(unix.MSG_DONTWAIT)
	case l.busy && l.cfg.BusyPoll > 0:
		// A backlog had formed, so the next packet is close: poll a little
		// before sleeping. Every sleep costs a wake-up on the CPU that
		// queues packets, and a P hand-off in the Go scheduler.
		end := time.Now().Add(l.cfg.BusyPoll)
		for {
			n, err = l.recv(unix.MSG_DONTWAIT)
			if err != unix.EAGAIN || time.Now().After(end) {
				break
			}
		}
	}
	if err == unix.EAGAIN {
		n, err = l.recv(unix.MSG_WAITFORONE)
	}
	// A short read means the socket was empty a moment ago: the next call
	// may as well block at once (one system call per wake-up at low rates).
	l.dry = n < len(l.mm)
	l.busy = n > 1
	if err != nil {
		return 0, err
	}
	l.take(n)
	l.flush()
	return n, nil
}

// take handles the n datagrams the last receive returned.
func (l *loop) take(n int) {
	l.c.recvCalls++
	l.recvAt, l.fresh = time.Now(), true
	for i := range n {
		m := &l.mm[i]
		size := min(int(m.Len), l.slot)
		if m.Hdr.Flags&unix.MSG_TRUNC != 0 {
			l.c.truncated++
		}
		l.datagram(l.buf[i*l.stride : i*l.stride+size])
	}
	l.batchDone()
}

func (l *loop) batchDone() {
	if l.cfg.BatchDone != nil {
		l.cfg.BatchDone(l.queue)
	}
}

// datagram handles every netlink message in one received skb.
func (l *loop) datagram(b []byte) {
	for {
		typ, body, rest, trunc, ok := nextMsg(b)
		if !ok {
			return
		}
		b = rest
		switch typ {
		case msgPacket:
			l.packet(body, trunc)
		case nlmsgError:
			errno, seq, ok := nlError(body)
			if ok && l.quiesceSeq != 0 && seq == l.quiesceSeq {
				l.quiesceAck, l.quiesceErr = true, errno
				continue
			}
			if ok && errno != 0 {
				l.c.kernelErrs++
				if l.allow(logKernel) {
					l.cfg.Logger.Warn("nfqueue: kernel rejected a verdict", "queue", l.queue,
						"err", unix.Errno(-errno), "suppressed", l.suppressed(logKernel))
				}
			}
		}
	}
}

// packet decodes one packet, runs the handler and queues its verdict.
func (l *loop) packet(body []byte, trunc bool) {
	p := &l.pkt
	p.reset()
	l.c.received++
	res := decodePacket(body, p)
	p.Queue, p.Received = l.queue, l.recvAt
	if trunc && res == decodeOK {
		res = decodeBad
	}
	switch res {
	case decodeNoID:
		l.c.decodeErrors++
		l.c.unverdictable++
		if l.allow(logDecode) {
			l.cfg.Logger.Warn("nfqueue: packet message without id, no verdict possible",
				"queue", l.queue, "len", len(body), "suppressed", l.suppressed(logDecode))
		}
		return
	case decodeBad:
		l.c.decodeErrors++
		p.verdict = VerdictUnset
	default:
		if l.h != nil && l.call(p) {
			l.c.panics++
			p.verdict, p.setMark, p.hasPayload = l.cfg.DefaultVerdict, false, false
		}
	}
	l.verdict(p)
}

// call runs the handler and reports whether it panicked.
func (l *loop) call(p *Packet) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			if l.allow(logPanic) {
				l.cfg.Logger.Error("nfqueue: handler panicked; default verdict applied", "queue", l.queue,
					"id", p.ID, "panic", fmt.Sprint(r), "suppressed", l.suppressed(logPanic))
			}
		}
	}()
	l.h(p)
	return false
}

// verdict queues p's verdict and flushes when the mode or the timer says so.
func (l *loop) verdict(p *Packet) {
	v := p.verdict
	if !v.valid() {
		v = l.cfg.DefaultVerdict
		p.toQueue, p.bypass = 0, false
		l.c.defaulted++
	}
	payload, hasPayload := p.newPayload, p.hasPayload
	if hasPayload && len(payload) > maxAttrValue {
		v, hasPayload, payload = Drop, false, nil
		l.c.payloadErrors++
	}
	switch v {
	case Accept:
		l.c.accepted++
	case Drop:
		l.c.dropped++
	case Repeat:
		l.c.repeated++
	case Queue:
		l.c.queued++
	}
	if len(l.enc.buf) > 0 && len(l.enc.buf)+verdictSize(p.setMark, len(payload), hasPayload) > flushAt {
		l.flush()
	}
	l.enc.add(p.ID, kernelVerdict(v, p.toQueue, p.bypass), p.newMark, p.setMark, payload, hasPayload)
	if l.cfg.VerdictMode == PerPacket {
		l.flush()
		return
	}
	l.pending++
	switch {
	case l.pending == 1:
		l.pendSince = l.recvAt
		if !l.fresh {
			l.pendSince = time.Now()
		}
	case l.pending%timeCheckEvery == 0 && time.Since(l.pendSince) > l.cfg.FlushInterval:
		l.flush()
	}
}

// flush sends every queued verdict with one sendmsg.
func (l *loop) flush() {
	if len(l.enc.buf) == 0 {
		return
	}
	for {
		// Raw: the kernel handles a verdict without sleeping (see recv).
		_, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(l.fd), uintptr(unsafe.Pointer(&l.enc.buf[0])), uintptr(len(l.enc.buf)))
		l.c.syscalls++
		l.c.sendCalls++
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			err := error(e)
			l.c.sendErrors++
			// The lost verdicts' packets stay queued in the kernel, and a
			// later batch verdict would sweep them up with whatever verdict
			// it carries: from now on send individual verdicts only.
			l.enc.mode = Vectored
			if l.allow(logSend) {
				l.cfg.Logger.Error("nfqueue: sending verdicts failed; these packets wait until unbind",
					"queue", l.queue, "packets", l.enc.pkts, "err", err, "suppressed", l.suppressed(logSend))
			}
		}
		break
	}
	l.c.verdictMsgs += uint64(l.enc.msgs)
	l.c.batches += uint64(l.enc.batches)
	l.enc.reset()
	l.pending, l.fresh = 0, false
	if l.flushes++; l.flushes%16 == 0 {
		l.c.publish(&l.pub)
	}
}

// recvError handles a failed receive; it returns an error only when the
// loop cannot go on.
func (l *loop) recvError(err error) error {
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		l.c.publish(&l.pub)
		return nil
	case err == unix.ENOBUFS:
		// The kernel could not queue a packet message on the socket; that
		// packet was dropped (or accepted, with FlagFailOpen) already.
		l.c.enobufs++
		if l.allow(logENOBUFS) {
			l.cfg.Logger.Warn("nfqueue: socket receive buffer overrun (ENOBUFS); raise RcvBuf or add queues",
				"queue", l.queue, "suppressed", l.suppressed(logENOBUFS))
		}
		return nil
	case err == unix.EBADF:
		return fmt.Errorf("receive on queue %d: %w", l.queue, err)
	}
	l.c.recvErrors++
	if l.allow(logRecv) {
		l.cfg.Logger.Error("nfqueue: receive failed; retrying", "queue", l.queue, "err", err,
			"suppressed", l.suppressed(logRecv))
	}
	time.Sleep(retryPause)
	return nil
}

func (l *loop) setTimeout(d time.Duration) error {
	tv := unix.NsecToTimeval(d.Nanoseconds())
	return unix.SetsockoptTimeval(l.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
}

// halt asks the loop to stop: to drain, unbind and return.
func (l *loop) halt() {
	l.once.Do(func() {
		l.stop.Store(true)
		close(l.halted)
	})
}

// run is the queue's goroutine: it owns a locked OS thread until stop is
// set, then drains, unbinds and closes the socket.
func (l *loop) run(h Handler, cpu int) (err error) {
	runtime.LockOSThread()
	// A pinned thread is never handed back to the scheduler: other
	// goroutines would inherit its CPU mask. Left locked, it exits with
	// this goroutine.
	if cpu < 0 {
		defer runtime.UnlockOSThread()
	}
	l.h = h
	if cpu >= 0 {
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			l.cfg.Logger.Warn("nfqueue: cannot pin queue thread", "queue", l.queue, "cpu", cpu, "err", err)
		}
	}
	if err := l.setTimeout(pollInterval); err != nil {
		return errors.Join(fmt.Errorf("set receive timeout on queue %d: %w", l.queue, err), l.shutdown())
	}
	l.takeStash()
	for !l.stop.Load() {
		if l.quiesceReq.Load() {
			if err := l.quiesce(); err != nil {
				return errors.Join(err, l.shutdown())
			}
			// Quiesced, the socket gets no packet: wait for Close.
			<-l.halted
			break
		}
		if _, err := l.step(); err != nil {
			if ferr := l.recvError(err); ferr != nil {
				return errors.Join(ferr, l.shutdown())
			}
		}
	}
	return l.shutdown()
}

// takeStash verdicts the packets that arrived while Open waited for the
// kernel's acknowledgement.
func (l *loop) takeStash() {
	if l.sock == nil {
		return
	}
	l.recvAt, l.fresh = time.Now(), true
	for _, d := range l.sock.stash {
		l.datagram(d)
	}
	l.batchDone()
	l.sock.stash = nil
	l.flush()
}

// shutdown quiesces the queue (if Quiesce did not already), publishes the
// counters, then unbinds and closes the socket.
func (l *loop) shutdown() error {
	err := l.quiesce()
	l.c.publish(&l.pub)
	if l.beforeUnbind != nil {
		l.beforeUnbind()
	}
	if l.sock != nil {
		if uerr := l.sock.unbind(); uerr != nil && err == nil {
			err = uerr
		}
		if cerr := l.sock.close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// quiesce makes the kernel queue nothing more here and verdicts everything
// it queued before. It sets the queue length to 0: from then on
// __nfqnl_enqueue_packet finds the queue full and accepts each new packet
// unqueued (FlagFailOpen) or drops it, while packets already queued still
// take their verdicts. The kernel applies the limit under the queue lock
// before the write returns, and a packet message is on the socket before
// its entry counts as queued, so once the socket reads empty, every queued
// packet has been read; their verdicts go out with the last flush. Where
// the kernel refuses the limit (or its answer was lost to a receive buffer
// overrun), the loop falls back to reading until the socket stays idle for
// DrainIdle. Only the first call does anything; it returns an error only
// when the socket failed.
func (l *loop) quiesce() error {
	select {
	case <-l.quiesced:
		return nil
	default:
	}
	defer close(l.quiesced)
	l.takeStash()
	if l.sock != nil {
		t0, before := time.Now(), l.c.received
		l.quiesceSeq = l.sock.nextSeq()
		_, werr := unix.Write(l.fd, maxLenMsg(l.queue, l.quiesceSeq, 0))
		if werr == nil {
			if err := l.readDry(); err != nil {
				return err
			}
			if l.quiesceAck && l.quiesceErr == 0 {
				l.cfg.Logger.Debug("nfqueue: quiesced: queue length 0, every queued packet verdicted",
					"queue", l.queue, "drained", l.c.received-before, "took", time.Since(t0))
				return nil
			}
		}
		l.cfg.Logger.Warn("nfqueue: kernel did not take queue length 0 at stop; draining until idle",
			"queue", l.queue, "err", errors.Join(werr, ackErr(l.quiesceAck, l.quiesceErr)))
	}
	return l.drainIdle()
}

// readDry reads and verdicts what is on the socket, without blocking,
// until it is empty (or DrainTimeout passes).
func (l *loop) readDry() error {
	deadline := time.Now().Add(l.cfg.DrainTimeout)
	for time.Now().Before(deadline) {
		n, err := l.recv(unix.MSG_DONTWAIT)
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			if ferr := l.recvError(err); ferr != nil {
				l.flush()
				return ferr
			}
			continue
		}
		l.take(n)
		l.flush()
	}
	l.flush()
	return nil
}

func ackErr(acked bool, errno int32) error {
	switch {
	case !acked:
		return errors.New("no acknowledgement")
	case errno != 0:
		return unix.Errno(-errno)
	}
	return nil
}

// drainIdle reads until the socket stays idle for DrainIdle (or
// DrainTimeout passes), verdicting everything.
func (l *loop) drainIdle() error {
	err := l.setTimeout(l.cfg.DrainIdle)
	deadline := time.Now().Add(l.cfg.DrainTimeout)
	for err == nil && time.Now().Before(deadline) {
		n, rerr := l.step()
		if rerr == unix.EAGAIN || (rerr == nil && n == 0) {
			break
		}
		if rerr != nil {
			err = l.recvError(rerr)
		}
	}
	l.flush()
	return err
}

// Rate-limited logging: at most one line per kind per second.
const (
	logENOBUFS = iota
	logPanic
	logDecode
	logKernel
	logSend
	logRecv
	nLogKinds
)

type limiter struct {
	last       time.Time
	suppressed uint64
}

func (l *loop) allow(kind int) bool {
	lim := &l.limits[kind]
	now := time.Now()
	if now.Sub(lim.last) < time.Second {
		lim.suppressed++
		return false
	}
	lim.last = now
	return true
}

func (l *loop) suppressed(kind int) uint64 {
	n := l.limits[kind].suppressed
	l.limits[kind].suppressed = 0
	return n
}
