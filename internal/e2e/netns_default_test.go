package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/engine"
	"github.com/qguard/qguard/internal/service"
	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
)

// TestIntegrationDefaultFlagsPerNetNS: `qguard run` without any flag in two
// network namespaces at once: each takes its namespace's control socket
// (and its own loopback metrics port), and `qguard status` without flags in
// each namespace reaches that namespace's daemon.
func TestIntegrationDefaultFlagsPerNetNS(t *testing.T) {
	tops := []*topo.Topology{newTopo(t, "qdn1"), newTopo(t, "qdn2")}
	type run struct {
		log  *testutil.SyncBuffer
		cmd  interface{ Signal(os.Signal) error }
		done chan struct{} // closed when the process has exited
		err  error         // its exit error, once done
	}
	var runs []*run
	for _, top := range tops {
		r := &run{log: &testutil.SyncBuffer{}, done: make(chan struct{})}
		c := top.Firewall.Command(context.Background(), qguardBin, "run")
		c.Stdout, c.Stderr = r.log, r.log
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		r.cmd = c.Process
		go func() { r.err = c.Wait(); close(r.done) }()
		t.Cleanup(func() {
			select {
			case <-r.done:
			default:
				c.Process.Kill()
				<-r.done
			}
			if t.Failed() {
				t.Logf("qguard in %s:\n%s", top.Firewall.Name, r.log.String())
			}
		})
		runs = append(runs, r)
	}
	for i, r := range runs {
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(r.log.String(), "msg=ready") {
			select {
			case <-r.done:
				t.Fatalf("qguard %d exited before ready: %v\n%s", i, r.err, r.log.String())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("qguard %d not ready after 10s:\n%s", i, r.log.String())
			}
		}
	}
	// Traffic through the first namespace only; each status sees its own.
	if err := ping(tops[0].Client, tops[0].ServerIP4.String(), 3); err != nil {
		t.Fatalf("ping through the first firewall: %v", err)
	}
	var socks []string
	for i, top := range tops {
		out, err := top.Firewall.Output(qguardBin, "status", "--json")
		if err != nil {
			t.Fatalf("qguard status in %s: %v\n%s", top.Firewall.Name, err, out)
		}
		var st engine.Stats
		if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Queues) == 0 {
			t.Fatalf("status in %s: %v\n%s", top.Firewall.Name, err, out)
		}
		if got := st.Queues[0].Packets; (i == 0) != (got >= 3) {
			t.Errorf("status in %s: %d packets (pinged through the first namespace only)", top.Firewall.Name, got)
		}
		var sock string
		if err := top.Firewall.Do(func() error { sock = service.DefaultControlPath(); return nil }); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(sock, "/run/qguard/control-netns-") || !strings.Contains(runs[i].log.String(), "control="+sock) {
			t.Errorf("daemon %d: control socket %s not the namespace's:\n%s", i, sock, runs[i].log.String())
		}
		socks = append(socks, sock)
	}
	if socks[0] == socks[1] {
		t.Errorf("both namespaces use %s", socks[0])
	}
	for i, r := range runs {
		r.cmd.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
			if r.err != nil {
				t.Errorf("qguard %d stop: %v", i, r.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("qguard %d still running 10s after SIGTERM", i)
		}
		if _, err := os.Stat(socks[i]); err == nil {
			t.Errorf("%s left behind", socks[i])
		}
	}
}
