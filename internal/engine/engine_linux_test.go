package engine

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
)

// tripwire is a configuration for table: a rule that drops UDP to port
// 9002 and blocks its source for a minute, after the sections in extra.
func tripwire(table, extra string) string {
	return "rules: {table: " + table + "}\n" + extra + `policy:
  default: accept
  rules:
    - name: tripwire
      match: {proto: udp, dport: [9002]}
      action: drop
      block_source: 1m
`
}

// TestIntegrationEngineInNamespace runs the engine as a library, the way the
// rule-test runner does: New inside NS.Do, everything else on other
// threads. The rules, the block goroutine's set updates and Close must all
// act in the firewall namespace, never in the caller's.
func TestIntegrationEngineInNamespace(t *testing.T) {
	testutil.NeedRoot(t, "namespaces, nftables, NFQUEUE")
	top := testutil.NewTopology(t, &topo.Options{Prefix: "qgen"})
	e := startEngine(t, top.Firewall, parseConfig(t, "engine-test.yaml", tripwire("qgengine", "")), nil)
	sendUDP(t, top.Client, "198.18.2.2:9002", "trip")
	deadline := time.Now().Add(3 * time.Second)
	for {
		out, _ := top.Firewall.Output("nft", "list", "set", "inet", "qgengine", "block4")
		if strings.Contains(out, "198.18.1.2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("source not blocked in the firewall namespace: %q (stats %+v)", out, e.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if e.Hits("tripwire") != 1 {
		t.Errorf("tripwire hits %d", e.Hits("tripwire"))
	}
	if out, _ := exec.Command("nft", "list", "tables").Output(); strings.Contains(string(out), "qgengine") {
		t.Fatal("the engine touched the caller's namespace")
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if out, _ := top.Firewall.Output("nft", "list", "tables"); strings.Contains(out, "qgengine") {
		t.Errorf("table left after Close: %s", out)
	}
}

// TestIntegrationEngineXDP: with xdp.interfaces set, block_source goes to
// the XDP program, which drops the source's later packets before the stack.
func TestIntegrationEngineXDP(t *testing.T) {
	testutil.NeedRoot(t, "namespaces, nftables, NFQUEUE, bpf")
	top := testutil.NewTopology(t, &topo.Options{Prefix: "qgex"})
	e := startEngine(t, top.Firewall, parseConfig(t, "engine-xdp.yaml", tripwire("qgenginex", "xdp: {interfaces: [fw-c], mode: generic}\n")), nil)
	if e.xdp == nil {
		t.Fatal("XDP not attached; this kernel supports it (the xdp package's tests attach here)")
	}
	if s := e.Stats(); len(s.XDP) != 1 || !strings.HasPrefix(s.XDP[0], "fw-c") {
		t.Errorf("stats XDP %v", s.XDP)
	}
	if err := top.Client.Run("ping", "-c", "1", "-W", "2", "198.18.2.2"); err != nil {
		t.Fatalf("ping before the block: %v", err)
	}
	sendUDP(t, top.Client, "198.18.2.2:9002", "trip")
	deadline := time.Now().Add(3 * time.Second)
	for e.xdp.Stats().DroppedSource == 0 {
		top.Client.Run("ping", "-c", "1", "-W", "1", "198.18.2.2")
		if time.Now().After(deadline) {
			t.Fatalf("XDP dropped nothing from the blocked source; engine %+v xdp %+v", e.Stats(), e.xdp.Stats())
		}
	}
	if s := e.Stats(); s.XDPDroppedSource == 0 {
		t.Errorf("stats lack the XDP drops: %+v", s)
	}
	if e.Stats().BlockErrors != 0 {
		t.Errorf("block errors: %+v", e.Stats())
	}
}

// TestIntegrationEngineStartFailure: a failure late in New (XDP on a
// missing interface, after the queue is bound and the table installed)
// undoes everything.
func TestIntegrationEngineStartFailure(t *testing.T) {
	testutil.NeedRoot(t, "namespaces, nftables, NFQUEUE")
	top := testutil.NewTopology(t, &topo.Options{Prefix: "qgef"})
	cfg := parseConfig(t, "engine-fail.yaml", "rules: {table: qgenginef}\nxdp: {interfaces: [nope0]}\n")
	err := top.Firewall.Do(func() error {
		_, err := New(cfg, &Options{Queue: &QueueRange{Num: 11, Count: 1}})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "nope0") {
		t.Fatalf("New with a missing XDP interface: %v", err)
	}
	if out, _ := top.Firewall.Output("nft", "list", "tables"); strings.Contains(out, "qgenginef") {
		t.Errorf("table left after a failed New: %s", out)
	}
	// The queue was unbound: binding it again works.
	cfg2 := parseConfig(t, "ok.yaml", "rules: {table: qgenginef}\n")
	if err := top.Firewall.Do(func() error {
		e, err := New(cfg2, &Options{Queue: &QueueRange{Num: 11, Count: 1}})
		if err == nil {
			err = e.Close()
		}
		return err
	}); err != nil {
		t.Fatalf("queue 11 still bound after a failed New: %v", err)
	}
}
