package engine

import (
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
	"github.com/qguard/qguard/verdict"
)

// fwCounter reads the test's own counter of UDP packets to port 9100
// entering the firewall's forward hook (priority -100, before qguard).
func fwCounter(t *testing.T, fw topo.NS) uint64 {
	t.Helper()
	out, err := fw.Output("nft", "list", "table", "inet", "qgtest")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no counter in %q", out)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// TestIntegrationBypassCounted floods UDP through the firewall into a slow
// handler. With queue.fail_open the kernel lets what it cannot queue pass,
// and the engine's bypass count must equal what entered the forward hook
// minus what the handler got, exactly once the queue is drained, whether
// the queue filled (tiny max_len) or the socket buffer did (tiny rcvbuf).
// Fail-closed, the same flood is dropped (the kernel's counters say so)
// and nothing is reported bypassed; at a low rate nothing is either.
func TestIntegrationBypassCounted(t *testing.T) {
	testutil.NeedRoot(t, "namespaces, nftables, NFQUEUE")
	top := testutil.NewTopology(t, &topo.Options{Prefix: "qgb"})
	if err := top.Firewall.Run("nft", "add table inet qgtest; add chain inet qgtest seen { type filter hook forward priority -100; }; add rule inet qgtest seen udp dport 9100 counter"); err != nil {
		t.Fatal(err)
	}
	// The stage decides (accept), so every packet runs it: a stage that
	// passes leaves the flow to the rules, which cache it, and only its
	// first packet was slow. The handler then kept up with the flood on a
	// quiet machine, and the 64 KiB socket never filled (1 run in 10).
	slow := verdict.StageFunc{StageName: "slow", Func: func(_ *verdict.Context, d *verdict.Decision) bool {
		time.Sleep(200 * time.Microsecond)
		d.Action = verdict.ActionAccept
		return true
	}}
	for _, tc := range []struct {
		name, queue string
		n           int
		gap         time.Duration
		failOpen    bool
		bypass      bool
		reload      bool
	}{
		{"queue full, fail-open", "{max_len: 16}", 20000, 0, true, true, false},
		{"socket full, fail-open", "{max_len: 100000, rcvbuf: 64KiB}", 20000, 0, true, true, false},
		{"queue full, fail-closed", "{max_len: 16, fail_open: false}", 20000, 0, false, false, false},
		{"low rate", "{}", 300, 2 * time.Millisecond, true, false, false},
		{"low rate, reloading", "{}", 1200, 2 * time.Millisecond, true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent0 := fwCounter(t, top.Firewall)
			cfg := parseConfig(t, "bypass.yaml", fmt.Sprintf(
				"queue: %s\nrules: {table: qgbypass, mode: queue-all, protocols: [udp], dports: [9100]}\npolicy: {default: accept}\n", tc.queue))
			logs := &testutil.SyncBuffer{}
			stages := []verdict.Stage{slow}
			if tc.gap > 0 {
				stages = nil // a fast handler: any bypass reported is false
			}
			e := startEngine(t, top.Firewall, cfg, &Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Stages: stages})
			time.Sleep(50 * time.Millisecond) // the first sample is the baseline
			c := dialUDP(t, top.Client, net.JoinHostPort(top.ServerIP4.String(), "9100"))
			msg := make([]byte, 64)
			for i := 0; i < tc.n; i++ {
				_, _ = c.Write(msg) // port unreachable answers make some fail: fine
				if tc.gap > 0 {
					time.Sleep(tc.gap)
				}
				if tc.reload && (i == tc.n/3 || i == tc.n*2/3) {
					// New generation, new steering rules and counters:
					// samples before, across and after.
					if err := e.Reload(cfg); err != nil {
						t.Fatal(err)
					}
				}
			}
			c.Close()
			// Drained: the handler got everything queued, the kernel holds
			// nothing, and a sample after that has been taken.
			var s Stats
			deadline := time.Now().Add(15 * time.Second)
			last := ^uint64(0)
			for {
				s = e.Stats()
				q := s.Queues[0]
				if q.KernelPending == 0 && q.Packets == last {
					break
				}
				last = q.Packets
				if time.Now().After(deadline) {
					t.Fatalf("queue not drained: %+v", q)
				}
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(bypassEvery + 200*time.Millisecond)
			s = e.Stats()
			sent := fwCounter(t, top.Firewall) - sent0
			q := s.Queues[0]
			t.Logf("sent %d, queued (handled) %d, bypassed %d, kernel dropped %d (queue full) + %d (socket full)",
				sent, q.Packets, s.QueueBypassed, q.KernelQueueDropped, q.KernelUserDropped)
			switch {
			case tc.bypass:
				if s.QueueBypassed == 0 || s.QueueBypassed != sent-q.Packets {
					t.Errorf("bypassed %d, want sent - queued = %d", s.QueueBypassed, sent-q.Packets)
				}
				if !strings.Contains(logs.String(), "kernel let packets through without queueing them") {
					t.Errorf("no WARN line:\n%s", logs.String())
				}
			case !tc.failOpen:
				if s.QueueBypassed != 0 {
					t.Errorf("fail-closed reported %d bypassed", s.QueueBypassed)
				}
				if d := q.KernelQueueDropped + q.KernelUserDropped; d == 0 || d != sent-q.Packets {
					t.Errorf("kernel dropped %d, want sent - queued = %d", d, sent-q.Packets)
				}
			default:
				if s.QueueBypassed != 0 || q.Packets != sent {
					t.Errorf("low rate: bypassed %d, queued %d of %d", s.QueueBypassed, q.Packets, sent)
				}
			}
		})
	}
}
