package engine

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
)

// TestIntegrationEngineKernelLog: a log rule the kernel decides (after a
// reload from queue-all into kernel-first, which binds the nflog group)
// writes the daemon's decision line, marked kernel, with the rule, the
// action and the packet's addresses; the packet never reaches the queue.
func TestIntegrationEngineKernelLog(t *testing.T) {
	testutil.NeedRoot(t, "namespaces, nftables, NFQUEUE, nflog")
	top := testutil.NewTopology(t, &topo.Options{Prefix: "qgkl"})
	file := func(mode string) *config.File {
		return parseConfig(t, "klog.yaml", `
rules: {table: qgklog, mode: `+mode+`}
policy:
  default: accept
  rules:
    - name: logged-drop
      match: {proto: udp, dport: [9003]}
      action: drop
      log: true
`)
	}
	rec := &lineRecorder{}
	e := startEngine(t, top.Firewall, file("queue-all"), &Options{Logger: slog.New(rec)})
	if e.nflog != nil {
		t.Fatal("nflog bound in queue-all")
	}
	if err := e.Reload(file("kernel-first")); err != nil {
		t.Fatal(err)
	}
	queued := e.Stats().Queues[0].Packets
	sendUDP(t, top.Client, "198.18.2.2:9003", "log me")
	deadline := time.Now().Add(3 * time.Second)
	for !rec.has("rule=logged-drop action=drop proto=17 src=198.18.1.2") {
		if time.Now().After(deadline) {
			t.Fatalf("no kernel decision line; log:\n%s", rec.text())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !rec.has("dport=9003 kernel=true") {
		t.Errorf("decision line without the port or kernel=true:\n%s", rec.text())
	}
	if n := e.Stats().Queues[0].Packets - queued; n != 0 {
		t.Errorf("%d packets queued: the kernel should have decided", n)
	}
}

// lineRecorder is a slog handler keeping "message k=v ..." lines.
type lineRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *lineRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *lineRecorder) WithGroup(string) slog.Handler            { return l }
func (l *lineRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}

func (l *lineRecorder) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.lines {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}

func (l *lineRecorder) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
