package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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

// TestIntegrationStopUnderLoad: SIGHUP and then SIGTERM while a UDP stream
// flows lose no packet: a reload replaces the rules in one transaction, and
// a stop steers traffic to bypass first, then drains the queue.
func TestIntegrationStopUnderLoad(t *testing.T) {
	top := newTopo(t, "qes")
	d := startDaemon(t, top, "")
	sink := listenPacketIn(t, top.Server, "udp", fmt.Sprintf("[::]:%d", portUDPSink))
	forceRcvBuf(t, sink, 16<<20) // a busy CI machine must not lose packets in the sink
	var (
		mu   sync.Mutex
		seen = map[uint32]bool{}
	)
	go func() {
		buf := make([]byte, 64)
		for {
			n, _, err := sink.ReadFrom(buf)
			if err != nil {
				return
			}
			if n >= 4 {
				mu.Lock()
				seen[binary.BigEndian.Uint32(buf)] = true
				mu.Unlock()
			}
		}
	}()
	c, err := dialIn(top.Client, "udp", hostPort(top.ServerIP4, portUDPSink), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// About 10,000 packets a second for 1.5 s; SIGTERM after 0.5 s.
	var sent uint32
	buf := make([]byte, 32)
	start := time.Now()
	stopped, reloads := false, 0
	for time.Since(start) < 1500*time.Millisecond {
		for range 10 {
			binary.BigEndian.PutUint32(buf, sent)
			if _, err := c.Write(buf); err != nil {
				t.Fatalf("send %d: %v", sent, err)
			}
			sent++
		}
		// Two reloads on the way: a reload must not lose packets either.
		if el := time.Since(start); reloads < 2 && el > time.Duration(150*(reloads+1))*time.Millisecond {
			d.signal(syscall.SIGHUP)
			reloads++
		}
		if !stopped && time.Since(start) > 500*time.Millisecond {
			d.signal(syscall.SIGTERM)
			stopped = true
		}
		time.Sleep(time.Millisecond)
	}
	if err := d.wait(10 * time.Second); err != nil {
		t.Fatalf("qguard exit: %v\n%s", err, d.log.String())
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	got := len(seen)
	mu.Unlock()
	if got != int(sent) {
		t.Errorf("sent %d UDP packets, server received %d: %d lost across SIGHUP and SIGTERM", sent, got, int(sent)-got)
	}
	if out, err := top.Firewall.Output("nft", "list", "tables"); err != nil || strings.Contains(out, "qguard") {
		t.Errorf("table left behind after SIGTERM: %q %v", out, err)
	}
	if _, err := os.Stat(d.control); !os.IsNotExist(err) {
		t.Errorf("control socket left after a clean stop: %v", err)
	}
	if n := len(jsonLines(d.log.String(), "reloaded")); n != 2 {
		t.Errorf("%d reloads logged, want 2", n)
	}
	if !strings.Contains(d.log.String(), `"msg":"stopped"`) {
		t.Errorf("no clean stop logged:\n%s", d.log.String())
	}
	if st := jsonLines(d.log.String(), "stopped"); len(st) == 1 {
		took, _ := st[0]["took"].(float64)
		t.Logf("sent %d, received %d; the stop took %v", sent, got, time.Duration(took))
	}
}

const failClosedYAML = `
queue: {fail_open: false, default_verdict: drop}
rules: {bypass: false}
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
