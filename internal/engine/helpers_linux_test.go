package engine

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/internal/topo"
)

// parseConfig parses yaml as the configuration file name.
func parseConfig(t testing.TB, name, yaml string) *config.File {
	t.Helper()
	cfg, err := config.Parse(name, []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startEngine creates an engine inside ns, the way the rule-test runner
// does (New in NS.Do, everything else on other threads), and starts it.
// It is closed at cleanup; Close may also be called before.
func startEngine(t testing.TB, ns topo.NS, cfg *config.File, o *Options) *Engine {
	t.Helper()
	var e *Engine
	if err := ns.Do(func() (err error) {
		e, err = New(cfg, o)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

// waitStats polls e's stats until cond holds or a second passed; the caller
// checks the stats after it.
func waitStats(e *Engine, cond func(Stats) bool) {
	for deadline := time.Now().Add(time.Second); !cond(e.Stats()) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}

// dialUDP connects a UDP socket from ns to addr ("host:port"), closed at
// cleanup.
func dialUDP(t testing.TB, ns topo.NS, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	if err := ns.Do(func() (err error) {
		c, err = net.Dial("udp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// sendUDP sends one datagram from ns to addr.
func sendUDP(t testing.TB, ns topo.NS, addr, payload string) {
	t.Helper()
	c := dialUDP(t, ns, addr)
	_, _ = c.Write([]byte(payload))
	_ = c.Close()
}
