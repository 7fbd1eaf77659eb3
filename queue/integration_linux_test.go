package queue

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestIntegrationQueue(t *testing.T) {
	e := newQEnv(t)
	t.Run("DeliverIPv4IPv6", e.testDeliver)
	t.Run("Drop", e.testDrop)
	t.Run("MarkVisibleToLaterRule", e.testMark)
	t.Run("ModifiedPayload", e.testPayload)
	t.Run("Repeat", e.testRepeat)
	t.Run("QueueTo", e.testQueueTo)
	t.Run("FailOpen", e.testFailOpen)
	t.Run("Bypass", e.testBypass)
	t.Run("SecondOpenIsBusy", e.testBusy)
	t.Run("ENOBUFSCountedLoopContinues", e.testENOBUFS)
	t.Run("UIDGIDOnLocalOutput", e.testUIDGID)
	t.Run("ZeroAllocsAgainstKernel", e.testAllocs)
	t.Run("ShutdownUnderLoad", e.testShutdownUnderLoad)
}

func (e *qenv) testDeliver(t *testing.T) {
	e.steer(t, "-p udp --dport 9001 -j NFQUEUE --queue-num 10")
	cpu := runtime.NumCPU() - 1
	q := e.open(t, &Config{Num: 10, CPUs: []int{cpu}})
	var v4, v6, badMeta, unpinned atomic.Int32
	stop := run(t, q, func(p *Packet) {
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &set); err != nil || set.Count() != 1 || !set.IsSet(cpu) {
			unpinned.Add(1)
		}
		switch p.HwProto {
		case 0x0800:
			v4.Add(1)
		case 0x86dd:
			v6.Add(1)
		}
		if p.Hook != 2 || p.Has&(AttrInIf|AttrOutIf|AttrPayload) != AttrInIf|AttrOutIf|AttrPayload || p.Queue != 10 ||
			int(p.CapLen) != len(p.Payload) || p.OrigLen != p.CapLen {
			badMeta.Add(1)
		}
		p.Accept()
	})
	srv := e.sink(t, 9001)
	send(t, e.client(t, e.top.ServerIP4, 9001), 20, "v4")
	send(t, e.client(t, e.top.ServerIP6, 9001), 20, "v6")
	got := collect(srv, 40, 2*time.Second)
	if len(got) != 40 || v4.Load() != 20 || v6.Load() != 20 || badMeta.Load() != 0 || unpinned.Load() != 0 {
		t.Fatalf("server got %d of 40; handler saw %d IPv4, %d IPv6, %d with bad metadata, %d off CPU %d",
			len(got), v4.Load(), v6.Load(), badMeta.Load(), unpinned.Load(), cpu)
	}
	st := q.Stats()
	if len(st) != 1 || !st[0].Kernel.Valid || st[0].Kernel.PortID == 0 || st[0].Kernel.IDSequence < 40 || st[0].Kernel.CopyMode != 2 {
		t.Fatalf("stats %+v", st)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := q.Stats()[0]; s.Received != 40 || s.Accepted != 40 {
		t.Fatalf("stats after stop %+v", s)
	}
}

func (e *qenv) testDrop(t *testing.T) {
	e.steer(t, "-p udp --dport 9002 -j NFQUEUE --queue-num 11")
	q := e.open(t, &Config{Num: 11})
	run(t, q, func(p *Packet) {
		if bytes.Contains(p.Payload, []byte("drop")) {
			p.Drop()
			return
		}
		p.Accept()
	})
	srv := e.sink(t, 9002)
	c := e.client(t, e.top.ServerIP4, 9002)
	send(t, c, 10, "drop")
	send(t, c, 10, "keep")
	got := collect(srv, 20, 500*time.Millisecond)
	if len(got) != 10 {
		t.Fatalf("server got %d, want the 10 kept", len(got))
	}
	for _, g := range got {
		if !bytes.HasPrefix(g, []byte("keep")) {
			t.Fatalf("dropped packet delivered: %q", g)
		}
	}
}

var counterRE = regexp.MustCompile(`counter packets (\d+)`)

func (e *qenv) testMark(t *testing.T) {
	e.steer(t, "-p udp --dport 9003 -j NFQUEUE --queue-num 12")
	nft := `table inet qgqmark {
  chain post {
    type filter hook postrouting priority 0; policy accept;
    meta mark 0x42 udp dport 9003 counter
  }
}`
	f := t.TempDir() + "/mark.nft"
	if err := os.WriteFile(f, []byte(nft), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.top.Firewall.Run("nft", "-f", f); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.top.Firewall.Run("nft", "delete", "table", "inet", "qgqmark") })
	q := e.open(t, &Config{Num: 12})
	run(t, q, func(p *Packet) {
		if p.Mark != 0 {
			p.Drop() // must arrive unmarked
			return
		}
		p.SetMark(0x42)
		p.Accept()
	})
	srv := e.sink(t, 9003)
	send(t, e.client(t, e.top.ServerIP4, 9003), 10, "m4")
	send(t, e.client(t, e.top.ServerIP6, 9003), 10, "m6")
	if got := collect(srv, 20, time.Second); len(got) != 20 {
		out, _ := e.top.Firewall.Output("nft", "list", "ruleset")
		t.Fatalf("server got %d of 20: %q %+v\n%s", len(got), got, q.Stats(), out)
	}
	out, err := e.top.Firewall.Output("nft", "list", "chain", "inet", "qgqmark", "post")
	if err != nil {
		t.Fatal(err)
	}
	m := counterRE.FindStringSubmatch(out)
	if m == nil || m[1] != "20" {
		t.Fatalf("nft counter for meta mark 0x42: %v\n%s", m, out)
	}
}

func (e *qenv) testPayload(t *testing.T) {
	e.steer(t, "-p udp --dport 9004 -j NFQUEUE --queue-num 13")
	q := e.open(t, &Config{Num: 13})
	run(t, q, func(p *Packet) {
		p.SetPayload(upcase(p.Payload))
		p.Accept()
	})
	srv := e.sink(t, 9004)
	send(t, e.client(t, e.top.ServerIP4, 9004), 5, "hello v4")
	send(t, e.client(t, e.top.ServerIP6, 9004), 5, "hello v6")
	got := collect(srv, 10, time.Second)
	if len(got) != 10 {
		t.Fatalf("server got %d of 10 (a bad checksum makes the server drop them)", len(got))
	}
	for _, g := range got {
		if !bytes.HasPrefix(g, []byte("HELLO V")) {
			t.Fatalf("payload not modified: %q", g)
		}
	}
	if s := q.Stats()[0]; s.KernelErrs != 0 {
		t.Fatalf("kernel rejected verdicts: %+v", s)
	}
}

func (e *qenv) testRepeat(t *testing.T) {
	// Marked packets skip the queue rule, so a repeated packet passes.
	e.steer(t, "-p udp --dport 9005 -m mark ! --mark 0x1/0x1 -j NFQUEUE --queue-num 14")
	q := e.open(t, &Config{Num: 14})
	var seen atomic.Int32
	stop := run(t, q, func(p *Packet) {
		seen.Add(1)
		p.SetMark(p.Mark | 1)
		p.Repeat()
	})
	srv := e.sink(t, 9005)
	send(t, e.client(t, e.top.ServerIP4, 9005), 10, "r4")
	send(t, e.client(t, e.top.ServerIP6, 9005), 10, "r6")
	if got := collect(srv, 20, time.Second); len(got) != 20 || seen.Load() != 20 {
		t.Fatalf("server got %d of 20, handler saw %d (want each once)", len(got), seen.Load())
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := q.Stats()[0]; s.Repeated != 20 {
		t.Fatalf("stats %+v", s)
	}
}

func (e *qenv) testQueueTo(t *testing.T) {
	e.steer(t, "-p udp --dport 9006 -j NFQUEUE --queue-num 20")
	q := e.open(t, &Config{Num: 20, Count: 2})
	var first, second, other atomic.Int32
	stop := run(t, q, func(p *Packet) {
		switch {
		case p.Queue == 20 && bytes.Contains(p.Payload, []byte("to21")):
			first.Add(1)
			p.QueueTo(21, false)
		case p.Queue == 20 && bytes.Contains(p.Payload, []byte("nobypass")):
			p.QueueTo(29, false) // nobody on 29: the kernel drops
		case p.Queue == 20:
			p.QueueTo(29, true) // nobody on 29: the kernel accepts
		case p.Queue == 21:
			second.Add(1)
			p.Accept()
		default:
			other.Add(1)
		}
	})
	srv := e.sink(t, 9006)
	c := e.client(t, e.top.ServerIP4, 9006)
	send(t, c, 10, "to21")
	send(t, c, 10, "bypass")
	send(t, c, 10, "nobypass")
	got := collect(srv, 30, time.Second)
	var to21, bypass int
	for _, g := range got {
		switch {
		case bytes.HasPrefix(g, []byte("to21")):
			to21++
		case bytes.HasPrefix(g, []byte("bypass")):
			bypass++
		default:
			t.Errorf("delivered although queued to an unbound queue without bypass: %q", g)
		}
	}
	if to21 != 10 || bypass != 10 || first.Load() != 10 || second.Load() != 10 || other.Load() != 0 {
		t.Fatalf("delivered to21 %d bypass %d; queue 20 saw %d, queue 21 saw %d, other %d", to21, bypass, first.Load(), second.Load(), other.Load())
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := q.Stats(); s[0].Queued != 30 || s[1].Accepted != 10 {
		t.Fatalf("stats %+v", s)
	}
}

func (e *qenv) testFailOpen(t *testing.T) {
	e.steer(t, "-p udp --dport 9007 -j NFQUEUE --queue-num 15")
	q := e.open(t, &Config{Num: 15, MaxLen: 4, Flags: FlagFailOpen})
	release := make(chan struct{})
	var seen atomic.Int32
	run(t, q, func(p *Packet) {
		if seen.Add(1) == 1 {
			<-release // stall: the kernel queue fills up
		}
		p.Accept()
	})
	srv := e.sink(t, 9007)
	send(t, e.client(t, e.top.ServerIP4, 9007), 30, "fo")
	// While the handler stalls, all but the queued few pass fail-open.
	early := collect(srv, 30, 500*time.Millisecond)
	close(release)
	late := collect(srv, 30-len(early), time.Second)
	if len(early) < 30-5 || len(early)+len(late) != 30 {
		t.Fatalf("delivered %d while stalled and %d after (want >= 25 and 30 in all)", len(early), len(late))
	}
}

func (e *qenv) testBypass(t *testing.T) {
	srv := e.sink(t, 9008)
	c := e.client(t, e.top.ServerIP4, 9008)
	e.steer(t, "-p udp --dport 9008 -j NFQUEUE --queue-num 16 --queue-bypass")
	send(t, c, 5, "bypass")
	if got := collect(srv, 5, time.Second); len(got) != 5 {
		t.Fatalf("--queue-bypass with no program bound: %d of 5 delivered", len(got))
	}
	e.steer(t, "-p udp --dport 9008 -j NFQUEUE --queue-num 16")
	send(t, c, 5, "nobypass")
	if got := collect(srv, 1, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("no bypass and no program bound: %d delivered, want 0", len(got))
	}
}

// TestHelperProcessBind is not a test: testBusy runs the test binary with
// QGUARD_HELPER_BIND set to bind a queue another process holds.
func TestHelperProcessBind(t *testing.T) {
	if os.Getenv("QGUARD_HELPER_BIND") == "" {
		t.Skip("helper process for TestIntegrationQueue/SecondOpenIsBusy")
	}
	q, err := Open(&Config{Num: 40, Logger: quietLogger()})
	if q != nil {
		q.Close()
	}
	if errors.Is(err, ErrQueueBusy) {
		fmt.Printf("ErrQueueBusy: %v\n", err)
	}
	t.Fatalf("helper: %v", err)
}

func (e *qenv) testBusy(t *testing.T) {
	q := e.open(t, &Config{Num: 40})
	_ = q
	var err error
	_ = e.top.Firewall.Do(func() error {
		var q2 *Queues
		q2, err = Open(&Config{Num: 40, Logger: quietLogger()})
		if q2 != nil {
			q2.Close()
		}
		return nil
	})
	if !errors.Is(err, ErrQueueBusy) || !strings.Contains(err.Error(), "queue 40") {
		t.Fatalf("second Open of queue 40: %v, want ErrQueueBusy naming the queue", err)
	}
	t.Logf("second Open: %v", err)
	// The same from another process: the test binary re-executed in the
	// firewall namespace (TestHelperProcessBind).
	out, perr := e.top.Firewall.Output("env", "QGUARD_HELPER_BIND=1", os.Args[0], "-test.run=^TestHelperProcessBind$", "-test.count=1")
	if perr == nil || !strings.Contains(out, "ErrQueueBusy: bind queue 40:") {
		t.Fatalf("second process binding queue 40: %v\n%s", perr, out)
	}
	// A range overlapping the bound queue binds nothing.
	_ = e.top.Firewall.Do(func() error {
		_, err = Open(&Config{Num: 39, Count: 3, Logger: quietLogger()})
		return nil
	})
	if !errors.Is(err, ErrQueueBusy) {
		t.Fatalf("range 39..41: %v", err)
	}
	out, _ = e.top.Firewall.Output("cat", "/proc/net/netfilter/nfnetlink_queue")
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && (f[0] == "39" || f[0] == "41") {
			t.Fatalf("failed Open left queue %s bound:\n%s", f[0], out)
		}
	}
}

func (e *qenv) testShutdownUnderLoad(t *testing.T) {
	e.steer(t, "-p udp --dport 9009 -j NFQUEUE --queue-num 17")
	// Without FlagFailOpen, the packets that arrive once Close set the
	// queue length to 0 are dropped by the kernel, unseen; every packet
	// queued before gets its verdict.
	q := e.open(t, &Config{Num: 17, DrainTimeout: 300 * time.Millisecond})
	var seen atomic.Int64
	run(t, q, func(p *Packet) {
		seen.Add(1)
		p.Accept()
	})
	srv := e.sink(t, 9009)
	var received atomic.Int64
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		received.Store(int64(len(collect(srv, 1<<30, 500*time.Millisecond))))
	}()
	c := e.client(t, e.top.ServerIP4, 9009)
	var sent atomic.Int64
	var stopSend atomic.Bool
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		for i := 0; !stopSend.Load(); i++ {
			if _, err := c.Write([]byte("load")); err == nil {
				sent.Add(1)
			}
			if i%64 == 0 {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()
	for seen.Load() < 5000 {
		time.Sleep(time.Millisecond)
	}
	closeStart := time.Now()
	if err := q.Close(); err != nil { // while the client keeps sending
		t.Fatal(err)
	}
	if d := time.Since(closeStart); d > 2*time.Second {
		t.Errorf("Close under load took %v with a 300ms drain timeout", d)
	}
	time.Sleep(100 * time.Millisecond) // keep sending into the unbound queue
	stopSend.Store(true)
	<-sendDone
	<-recvDone
	s := q.Stats()[0]
	verdicts := s.Accepted + s.Dropped + s.Repeated + s.Queued
	t.Logf("sent %d, handler saw %d, verdicts %d, server received %d, kernel %+v", sent.Load(), seen.Load(), verdicts, received.Load(), s.Kernel)
	if uint64(seen.Load()) != s.Received || verdicts != s.Received {
		t.Fatalf("handler saw %d, received %d, verdicts %d: a packet went without a verdict", seen.Load(), s.Received, verdicts)
	}
	if received.Load() != seen.Load() {
		t.Fatalf("server received %d but the handler accepted %d: verdicted packets lost (or unqueued ones passed)", received.Load(), seen.Load())
	}
}

func (e *qenv) testENOBUFS(t *testing.T) {
	e.steer(t, "-p udp --dport 9010 -j NFQUEUE --queue-num 18")
	// A 64 KiB receive buffer (the kernel doubles 32 KiB) holds a few
	// dozen messages.
	q := e.open(t, &Config{Num: 18, RcvBuf: 32 << 10})
	release := make(chan struct{})
	var seen atomic.Int32
	stop := run(t, q, func(p *Packet) {
		if seen.Add(1) == 1 {
			<-release
		}
		p.Accept()
	})
	srv := e.sink(t, 9010)
	c := e.client(t, e.top.ServerIP4, 9010)
	send(t, c, 1000, "flood")
	time.Sleep(100 * time.Millisecond)
	close(release)
	before := len(collect(srv, 1000, 300*time.Millisecond))
	for i := range 10 { // slowly, not to overrun the buffer again
		if _, err := fmt.Fprintf(c, "after %d", i); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	after := collect(srv, 10, 2*time.Second)
	k := q.Stats()[0].Kernel
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	s := q.Stats()[0]
	t.Logf("delivered %d of the flood, %d after; stats %+v kernel %+v", before, len(after), s, k)
	if s.ENOBUFS == 0 || k.UserDropped == 0 {
		t.Fatalf("no ENOBUFS counted (user_dropped %d)", k.UserDropped)
	}
	if len(after) != 10 {
		t.Fatalf("the loop stopped after ENOBUFS: %d of 10 later packets delivered", len(after))
	}
}

func (e *qenv) testUIDGID(t *testing.T) {
	// Locally generated packets carry their socket's owner (FlagUIDGID).
	ns := e.top.Client
	if err := ns.Run("iptables-nft", "-t", "filter", "-A", "OUTPUT", "-p", "udp", "--dport", "9011", "-j", "NFQUEUE", "--queue-num", "19"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Run("iptables-nft", "-t", "filter", "-F", "OUTPUT") })
	var q *Queues
	err := ns.Do(func() (err error) {
		// Without the conntrack glue the kernel refuses FlagConntrack;
		// the error must say so and bind nothing.
		if q, err := Open(&Config{Num: 19, Flags: FlagConntrack, Logger: quietLogger()}); err == nil {
			q.Close()
		} else if !errors.Is(err, ErrFlagUnsupported) {
			return fmt.Errorf("FlagConntrack: %w", err)
		}
		q, err = Open(&Config{Num: 19, Flags: FlagUIDGID | FlagGSO | FlagFailOpen, Logger: quietLogger()})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	type meta struct {
		has      Attr
		uid, gid uint32
		hook     uint8
		out      uint32
	}
	got := make(chan meta, 10)
	run(t, q, func(p *Packet) {
		select {
		case got <- meta{p.Has, p.UID, p.GID, p.Hook, p.OutIf}:
		default:
		}
		p.Accept()
	})
	srv := e.sink(t, 9011)
	send(t, e.client(t, e.top.ServerIP4, 9011), 3, "uid")
	if n := len(collect(srv, 3, time.Second)); n != 3 {
		t.Fatalf("server got %d of 3", n)
	}
	m := <-got
	if m.has&(AttrUID|AttrGID) != AttrUID|AttrGID || m.uid != uint32(os.Getuid()) || m.gid != uint32(os.Getgid()) || m.hook != 3 || m.out == 0 {
		t.Fatalf("metadata %+v: want UID %d GID %d on hook 3 (LOCAL_OUT) with an output interface", m, os.Getuid(), os.Getgid())
	}
}

func (e *qenv) testAllocs(t *testing.T) {
	e.steer(t, "-p udp --dport 9012 -j NFQUEUE --queue-num 22")
	q := e.open(t, &Config{Num: 22})
	l := q.loops[0]
	l.h = func(p *Packet) {
		p.SetMark(uint32(len(p.Payload)))
		p.Accept()
	}
	if err := l.setTimeout(time.Second); err != nil {
		t.Fatal(err)
	}
	e.sink(t, 9012) // else ICMP port unreachable fails the writes
	var fd int
	err := e.top.Client.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		return unix.Connect(fd, &unix.SockaddrInet4{Port: 9012, Addr: e.top.ServerIP4.As4()})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	payload := make([]byte, 36)
	const burst = 16
	allocs := testing.AllocsPerRun(50, func() {
		for range burst {
			if _, err := unix.Write(fd, payload); err != nil {
				t.Fatal(err)
			}
		}
		for got := 0; got < burst; {
			n, err := l.step()
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per %d packets: kernel -> recvmmsg -> handler -> verdict must not allocate", allocs, burst)
	}
	if l.c.received != 51*burst || l.c.accepted != 51*burst {
		t.Fatalf("counters %+v", l.c)
	}
}
