package e2e

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestIntegrationDefaultForwardsEverything: with no configuration file the
// daemon installs its rules, queues everything forwarded, and accepts it.
func TestIntegrationDefaultForwardsEverything(t *testing.T) {
	top := newTopo(t, "qed")
	servers(t, top)
	// Play systemd: READY=1 must come once the daemon decides packets.
	notifyPath := filepath.Join(t.TempDir(), "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	d := startDaemonEnv(t, top, []string{"NOTIFY_SOCKET=" + notifyPath}, "")
	buf := make([]byte, 256)
	notify.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := notify.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "READY=1") {
		t.Errorf("sd_notify: got %q, %v; want READY=1", buf[:n], err)
	}
	for _, ip := range []fmt.Stringer{top.ServerIP4, top.ServerIP6} {
		if err := ping(top.Client, ip.String(), 2); err != nil {
			t.Errorf("ping %s: %v", ip, err)
		}
		if err := httpGet(top.Client, hostPort(ip, portHTTP)); err != nil {
			t.Errorf("HTTP to %s: %v", ip, err)
		}
	}
	if a, err := dnsQuery(top.Client, top.ServerIP6, "www.example"); err != nil || a != top.ServerIP4 {
		t.Errorf("DNS over IPv6: %v %v", a, err)
	}
	if err := tlsHello(top.Client, hostPort(top.ServerIP4, portTLS), "good.example"); err != nil {
		t.Errorf("TLS: %v", err)
	}
	st := d.status()
	if len(st.Queues) != 1 || st.Queues[0].Packets == 0 || st.Queues[0].Accepted != st.Queues[0].Packets {
		t.Fatalf("status: every queued packet should be accepted: %+v", st.Queues)
	}
	if !st.RulesInstalled {
		t.Error("status says no rules installed")
	}
	d.signal(syscall.SIGTERM)
	if err := d.wait(10 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	notify.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := notify.Read(buf); err != nil || string(buf[:n]) != "STOPPING=1" {
		t.Errorf("sd_notify at stop: got %q, %v; want STOPPING=1", buf[:n], err)
	}
}

const policyYAML = `
queue: {num: 3}
rules:
  offload: false
policy:
  default: accept
  rules:
    - name: no-alt-http
      match: {proto: tcp, dport: [8081]}
      action: reject
    - name: no-extra-client
      match: {src: ["198.18.1.3/32", "2001:db8:1::3/128"]}
      action: drop
    - name: no-blocked-dns
      match: {dns: ["*.blocked.example", "blocked.example"]}
      action: drop
    - name: no-bad-tls
      match: {sni: ["*.bad.example", "bad.example"]}
      action: drop
    - name: no-ping4
      match: {proto: icmp}
      action: drop
`

// TestIntegrationPolicy: rules by port, by source prefix, by DNS name, by
// TLS server name and by protocol decide what they say, over IPv4 and IPv6.
func TestIntegrationPolicy(t *testing.T) {
	top := newTopoExtra(t, "qep")
	servers(t, top)
	d := startDaemon(t, top, policyYAML)

	for _, ip := range []fmt.Stringer{top.ServerIP4, top.ServerIP6} {
		if err := httpGet(top.Client, hostPort(ip, portHTTP)); err != nil {
			t.Errorf("HTTP to %s:%d should pass: %v", ip, portHTTP, err)
		}
		if err := httpGet(top.Client, hostPort(ip, portHTTPAlt)); err == nil {
			t.Errorf("HTTP to %s:%d should be rejected", ip, portHTTPAlt)
		}
		if err := tlsHello(top.Client, hostPort(ip, portTLS), "good.example"); err != nil {
			t.Errorf("TLS good.example to %s should pass: %v", ip, err)
		}
		if err := tlsHello(top.Client, hostPort(ip, portTLS), "www.bad.example"); err == nil {
			t.Errorf("TLS www.bad.example to %s should be dropped", ip)
		}
		if _, err := dnsQuery(top.Client, netipOf(ip), "ok.example"); err != nil {
			t.Errorf("DNS ok.example via %s should be answered: %v", ip, err)
		}
		if _, err := dnsQuery(top.Client, netipOf(ip), "ads.blocked.example"); err == nil {
			t.Errorf("DNS ads.blocked.example via %s should be dropped", ip)
		}
	}
	// A reject answers at once (TCP reset) instead of a timeout.
	t0 := time.Now()
	if _, err := dialIn(top.Client, "tcp", hostPort(top.ServerIP4, portHTTPAlt), 2*time.Second); err == nil {
		t.Error("connect to rejected port succeeded")
	} else if time.Since(t0) > time.Second {
		t.Errorf("reject took %v: looks like a drop, not a reset (%v)", time.Since(t0), err)
	}
	if err := ping(top.Client, top.ServerIP4.String(), 1); err == nil {
		t.Error("IPv4 ping should be dropped by no-ping4")
	}
	if err := ping(top.Client, top.ServerIP6.String(), 2); err != nil {
		t.Errorf("IPv6 ping should pass (no-ping4 matches icmp only): %v", err)
	}
	// The extra client address is dropped, the normal one is not.
	for _, src := range []string{extraClient4, extraClient6} {
		if err := dialFrom(top.Client, src, hostPort(serverFor(top, src), portEcho)); err == nil {
			t.Errorf("connection from %s should be dropped", src)
		}
	}
	st := d.status()
	hits := map[string]uint64{}
	for _, r := range st.Rules {
		hits[r.Name] = r.Hits
	}
	for _, name := range []string{"no-alt-http", "no-extra-client", "no-blocked-dns", "no-bad-tls", "no-ping4"} {
		if hits[name] == 0 {
			t.Errorf("rule %s has no hits: %+v", name, st.Rules)
		}
	}
	if st.Queues[0].Queue != 3 {
		t.Errorf("queue.num 3 not honoured: %+v", st.Queues)
	}
}
