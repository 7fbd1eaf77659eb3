package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lossPolicy is the i-th of the configurations the reload loss tests cycle
// through. The queued ports (the nftables rules), a port list, a prefix set
// and the order of the rules change every time; every one accepts the test
// stream (UDP to portUDPSink from the client).
func lossPolicy(i int) string {
	rules := []string{
		fmt.Sprintf("    - name: drop-ports\n      match: {proto: udp, dport: [%d, %d]}\n      action: drop\n", 7000+i%50, 7100+i%50),
		"    - name: drop-prefix\n      match: {src: [\"@bad\"]}\n      action: drop\n",
		fmt.Sprintf("    - name: sink\n      match: {proto: udp, dport: [%d]}\n      action: accept\n", portUDPSink),
	}
	var b strings.Builder
	b.WriteString(lossQueue)
	// queue-all: the stream's packets are counted in the queue.
	fmt.Fprintf(&b, "rules:\n  mode: queue-all\n  dports: [%d, %d]\n", portUDPSink, 7000+i%50)
	fmt.Fprintf(&b, "policy:\n  default: drop\n  sets:\n    bad: [\"203.0.%d.0/24\", \"2001:db8:ff%02x::/48\"]\n  rules:\n", i%250, i%250)
	for j := range rules {
		b.WriteString(rules[(i+j)%len(rules)])
	}
	return b.String()
}

// lossQueue is the queue section of the loss tests that count what qguard
// received: a kernel queue (and a socket buffer) deep enough for five
// seconds of the stream, so a daemon the busy machine does not schedule for
// a while does not make the kernel pass packets unqueued (fail-open, which
// no counter shows) and spoil the count.
const lossQueue = "queue: {max_len: 100000, rcvbuf: 256MiB}\n"

// expectQueuedOnce fails unless the daemon received exactly as many packets
// between two quiet moments as the stream sent: fewer means some passed
// unseen (a moment without steering, or a full queue failing open), more
// means some were queued twice (by an old and a new chain during a rules
// swap). peak is the most packets the kernel held at once, as sampled.
func expectQueuedOnce(t *testing.T, before, after uint64, sent uint32, peak uint64, what string) {
	t.Helper()
	if got := after - before; got != uint64(sent) {
		t.Errorf("%s: qguard received %d packets for %d sent (%+d); the kernel queue held at most %d at once (sampled)",
			what, got, sent, int64(got)-int64(sent), peak)
	}
}

// TestIntegrationReloadUnderLoad: three SIGHUPs with a changed policy (and
// changed nftables rules) while 20,000 packets a second flow lose nothing
// and queue nothing twice; five rounds.
func TestIntegrationReloadUnderLoad(t *testing.T) {
	top := newTopo(t, "qeh")
	d := startDaemon(t, top, lossPolicy(0))
	for round := range 5 {
		before := d.queued()
		peak := d.watchPending()
		s := startStream(t, top, portUDPSink)
		s.run(150 * time.Millisecond)
		for i := range 3 {
			d.writeConfig(lossPolicy(round*3 + i + 1))
			if !d.reload() {
				t.Fatalf("round %d: reload %d failed:\n%s", round, i, d.log.String())
			}
			s.run(100 * time.Millisecond)
		}
		sent := s.finish()
		what := fmt.Sprintf("round %d, three SIGHUPs", round)
		s.expectAll(0, sent, what)
		after, most := d.queued(), peak()
		expectQueuedOnce(t, before, after, sent, most, what)
		t.Logf("round %d: sent %d, qguard received %d, the kernel held at most %d", round, sent, after-before, most)
	}
}

// TestIntegrationReloadCommandUnderLoad: `qguard reload` ten times in five
// seconds, each with another policy, under 20,000 packets a second: nothing
// lost, nothing queued twice.
func TestIntegrationReloadCommandUnderLoad(t *testing.T) {
	top := newTopo(t, "qec")
	d := startDaemon(t, top, lossPolicy(0))
	before := d.queued()
	peak := d.watchPending()
	s := startStream(t, top, portUDPSink)
	start := time.Now()
	for i := range 10 {
		d.writeConfig(lossPolicy(i + 1))
		if out, err := exec.Command(qguardBin, "reload", "--control", d.control).CombinedOutput(); err != nil {
			t.Fatalf("qguard reload %d: %v: %s", i, err, out)
		}
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * 500 * time.Millisecond)))
	}
	sent := s.finish()
	s.expectAll(0, sent, "ten reloads")
	after, most := d.queued(), peak()
	expectQueuedOnce(t, before, after, sent, most, "ten reloads")
	if st := d.status(); st.Reloads != 10 || st.Failures != 0 {
		t.Errorf("status: %d reloads, %d failures; want 10 and 0", st.Reloads, st.Failures)
	}
	t.Logf("sent %d in %v, qguard received %d, the kernel held at most %d", sent, time.Since(start).Round(time.Millisecond), after-before, most)
}

// TestIntegrationRestartAfterKill: SIGKILL under load, then a new daemon
// over the table the dead one left, while the stream flows.
//
// The window: packets the kernel held in the dead daemon's queue at
// SIGKILL are dropped by the kernel when the socket closes; they are not
// qguard's to save, so packets sent before the old process was reaped
// (its socket is closed by then) are only counted, not required. Every
// packet sent after that must arrive: while no daemon runs the queue rule's
// bypass accepts them, and the new daemon's start (bind, then the rules
// brought to its configuration over the old table) must not flush what it
// already queued.
func TestIntegrationRestartAfterKill(t *testing.T) {
	top := newTopo(t, "qer")
	d1 := startDaemon(t, top, lossQueue+"rules: {mode: queue-all}\n")
	s := startStream(t, top, portUDPSink)
	s.run(300 * time.Millisecond)
	d1.signal(syscall.SIGKILL)
	_ = d1.wait(5 * time.Second)
	dead := s.mark()
	s.run(200 * time.Millisecond) // no daemon: bypass
	d2 := startDaemon(t, top, lossQueue+"rules: {mode: queue-all}\n")
	ready := s.mark()
	s.run(500 * time.Millisecond)
	sent := s.finish()
	queued := d2.queued()
	lostOld, _, _ := s.count(0, dead)
	s.expectAll(dead, sent, "after the killed daemon was reaped")
	t.Logf("sent %d: %d before the old daemon was reaped (%d of them lost in its queue), %d before the new one was ready; the new one queued %d",
		sent, dead, lostOld, ready, queued)
	// The new daemon can only have seen packets sent after the old one
	// died, and must have seen every one sent after it was ready.
	if queued > uint64(sent-dead) || queued < uint64(sent-ready) {
		t.Errorf("the new daemon queued %d packets: want between %d (sent after ready) and %d (sent after the old one died)",
			queued, sent-ready, sent-dead)
	}
	d2.signal(syscall.SIGTERM)
	if err := d2.wait(10 * time.Second); err != nil {
		t.Fatalf("qguard exit: %v", err)
	}
}
