package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/topo"
)

const reloadA = `
policy:
  default: accept
  rules:
    - name: no-ping4
      match: {proto: icmp}
      action: drop
`

const reloadB = `
policy:
  default: accept
  rules:
    - name: no-alt-http
      match: {proto: tcp, dport: [8081]}
      action: reject
`

const reloadBroken = `
policy:
  default: accept
  rules:
    - name: broken
      match: {proto: tcp, dport: ["not-a-port"]}
      action: reject
`

// TestIntegrationReload: SIGHUP with a new policy changes decisions without
// resetting an established connection; a broken file keeps the old policy
// and the daemon says why; `qguard reload` does the same over the control
// socket.
func TestIntegrationReload(t *testing.T) {
	top := newTopo(t, "qer")
	servers(t, top)
	d := startDaemon(t, top, reloadA)

	c, err := dialIn(top.Client, "tcp", hostPort(top.ServerIP6, portEcho), time.Second)
	if err != nil {
		t.Fatalf("connect to echo server: %v", err)
	}
	defer c.Close()
	if err := echo(c, "before"); err != nil {
		t.Fatalf("echo before reload: %v", err)
	}
	if ping(top.Client, top.ServerIP4.String(), 1) == nil {
		t.Fatal("policy A should drop IPv4 ping")
	}
	if err := httpGet(top.Client, hostPort(top.ServerIP4, portHTTPAlt)); err != nil {
		t.Fatalf("policy A should allow port %d: %v", portHTTPAlt, err)
	}

	d.writeConfig(reloadB)
	if !d.reload() {
		t.Fatalf("reload of policy B failed:\n%s", d.log.String())
	}
	if err := echo(c, "after-reload"); err != nil {
		t.Fatalf("established connection broken by the reload: %v", err)
	}
	if err := ping(top.Client, top.ServerIP4.String(), 1); err != nil {
		t.Errorf("policy B should allow IPv4 ping: %v", err)
	}
	if httpGet(top.Client, hostPort(top.ServerIP4, portHTTPAlt)) == nil {
		t.Errorf("policy B should reject port %d", portHTTPAlt)
	}

	d.writeConfig(reloadBroken)
	if d.reload() {
		t.Fatal("reload of a broken policy reported success")
	}
	fails := jsonLines(d.log.String(), "reload failed, keeping the running policy")
	if len(fails) != 1 || !strings.Contains(fmt.Sprint(fails[0]["err"]), "not-a-port") {
		t.Errorf("the log should say why the reload failed: %v", fails)
	}
	if httpGet(top.Client, hostPort(top.ServerIP4, portHTTPAlt)) == nil {
		t.Errorf("after a failed reload policy B should still reject port %d", portHTTPAlt)
	}
	if err := echo(c, "after-failed-reload"); err != nil {
		t.Fatalf("established connection broken by the failed reload: %v", err)
	}

	// The same over the control socket with the reload command.
	out, err := exec.Command(qguardBin, "reload", "--control", d.control).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not-a-port") {
		t.Errorf("qguard reload of a broken file: want failure naming the problem, got %v: %s", err, out)
	}
	d.writeConfig(reloadA)
	if out, err := exec.Command(qguardBin, "reload", "--control", d.control).CombinedOutput(); err != nil {
		t.Fatalf("qguard reload: %v: %s", err, out)
	}
	if ping(top.Client, top.ServerIP4.String(), 1) == nil {
		t.Error("policy A again should drop IPv4 ping")
	}
	if err := echo(c, "end"); err != nil {
		t.Fatalf("established connection broken: %v", err)
	}
	st := d.status()
	if st.Reloads != 4 || st.Failures != 2 {
		t.Errorf("status: reloads %d failures %d, want 4 and 2", st.Reloads, st.Failures)
	}
}

// TestIntegrationStopUnderLoad: SIGTERM while 20,000 UDP packets a second
// flow loses none: the stop quiesces the queue (the kernel queues nothing
// new and, fail-open, accepts it), verdicts what it holds, and only then
// removes the table and unbinds. (Reloads under load:
// TestIntegrationReloadUnderLoad.)
func TestIntegrationStopUnderLoad(t *testing.T) {
	top := newTopo(t, "qes")
	d := startDaemon(t, top, "")
	stopUnderLoad(t, top, d)
	noTable(t, top.Firewall, "after SIGTERM")
	if _, err := os.Stat(d.control); !os.IsNotExist(err) {
		t.Errorf("control socket left after a clean stop: %v", err)
	}
}

// stopUnderLoad sends SIGTERM to d while a stream flows through it and
// checks that every packet arrived, once, and that the daemon's final count
// of queued packets is possible: at least what it had counted before the
// signal, at most what was sent before it exited (a packet queued twice
// could push it over).
func stopUnderLoad(t *testing.T, top *topo.Topology, d *daemon) {
	t.Helper()
	s := startStream(t, top, portUDPSink)
	s.run(500 * time.Millisecond)
	before := d.queued()
	t0 := time.Now()
	d.signal(syscall.SIGTERM)
	if err := d.wait(10 * time.Second); err != nil {
		t.Fatalf("qguard exit: %v\n%s", err, d.log.String())
	}
	took := time.Since(t0)
	exited := s.mark()
	s.run(300 * time.Millisecond) // and after the stop
	sent := s.finish()
	s.expectAll(0, sent, "SIGTERM under load")
	queued := d.stoppedPackets()
	t.Logf("sent %d (%d before qguard exited, %v after SIGTERM); qguard queued %d (%d before SIGTERM)",
		sent, exited, took.Round(time.Millisecond), queued, before)
	if took > 500*time.Millisecond {
		tail := d.log.String()
		t.Logf("slow stop (%v); the end of the daemon log:\n%s", took, tail[max(0, len(tail)-3000):])
	}
	if before == 0 || queued < before || queued > uint64(exited) {
		t.Errorf("qguard queued %d packets (%d before SIGTERM), %d were sent before it exited", queued, before, exited)
	}
}

// failClosedYAML queues everything (mode queue-all), so that every packet
// follows fail-closed once the daemon is gone; kernel-first keeps the
// kernel's part of a policy (TestIntegrationPolicyOutlivesDaemon).
const failClosedYAML = `
queue: {fail_open: false, default_verdict: drop}
rules: {bypass: false, mode: queue-all}
`

// TestIntegrationKill: SIGKILL leaves the table behind; with bypass
// (fail-open, the default) traffic keeps flowing, without it (fail-closed)
// it stops until the table is removed.
func TestIntegrationKill(t *testing.T) {
	top := newTopo(t, "qek")
	for _, tc := range []struct {
		name, yaml string
		flows      bool
	}{{"fail-open", "", true}, {"fail-closed", failClosedYAML, false}} {
		t.Run(tc.name, func(t *testing.T) {
			d := startDaemon(t, top, tc.yaml)
			if err := ping(top.Client, top.ServerIP4.String(), 1); err != nil {
				t.Fatalf("ping while running: %v", err)
			}
			d.signal(syscall.SIGKILL)
			_ = d.wait(5 * time.Second)
			if out, err := top.Firewall.Output("nft", "list", "table", "inet", "qguard"); err != nil {
				t.Fatalf("after SIGKILL the table should stay: %v %s", err, out)
			}
			for _, ip := range []string{top.ServerIP4.String(), top.ServerIP6.String()} {
				err := ping(top.Client, ip, 1)
				if tc.flows && err != nil {
					t.Errorf("%s: ping %s after SIGKILL: %v", tc.name, ip, err)
				}
				if !tc.flows && err == nil {
					t.Errorf("%s: ping %s after SIGKILL passed", tc.name, ip)
				}
			}
			if err := top.Firewall.Run("nft", "delete", "table", "inet", "qguard"); err != nil {
				t.Fatal(err)
			}
			if err := ping(top.Client, top.ServerIP4.String(), 1); err != nil {
				t.Errorf("ping after removing the table: %v", err)
			}
		})
	}
}

// forceRcvBuf sets SO_RCVBUFFORCE (root ignores net.core.rmem_max).
func forceRcvBuf(t *testing.T, pc net.PacketConn, n int) {
	t.Helper()
	rc, err := pc.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, n)
	}); err != nil || serr != nil {
		t.Fatalf("SO_RCVBUFFORCE: %v %v", err, serr)
	}
}
