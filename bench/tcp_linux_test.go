package bench

import (
	"net/netip"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
)

// TestIntegrationTCPLoads runs the TCP stream and the short-connection load
// through kernel forwarding: bytes and connections arrive, none fails, and
// both stop promptly.
func TestIntegrationTCPLoads(t *testing.T) {
	tp := testutil.NewTopology(t, &topo.Options{Prefix: "qgbl"})
	srcs := []netip.Addr{tp.ClientIP4, tp.ClientIP6}

	s, err := startTCPStream(tp.Client, tp.Server, srcs, tp.ServerIP4, tp.ServerIP6, thread{cpu: -1}, thread{cpu: -1})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	s.close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("stream took %s to stop", d)
	}
	sent, read := s.bytes()
	t.Logf("stream: %.2f Gbit/s over 300ms", float64(read)*8/0.3/1e9)
	if read < 1<<20 || read > sent {
		t.Errorf("stream: sent %d, read %d bytes", sent, read)
	}

	l, err := startConnLoad(tp.Client, tp.Server, srcs, tp.ServerIP4, tp.ServerIP6, 4, thread{cpu: -1}, thread{cpu: -1})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	start = time.Now()
	l.close()
	if d := time.Since(start); d > connTimeout+time.Second {
		t.Errorf("connection load took %s to stop", d)
	}
	done, failed := l.counts()
	t.Logf("connections: %d done in 300ms", done)
	if done < 50 || failed != 0 {
		t.Errorf("connections: %d done, %d failed", done, failed)
	}
}
