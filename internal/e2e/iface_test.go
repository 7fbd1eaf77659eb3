package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/topo"
)

const ifacePolicy = `
queue: {num: 3}
rules:
  offload: false
policy:
  default: accept
  rules:
    - name: from-wg
      match: {in_iface: [wg0], proto: tcp}
      action: drop
    - name: to-tun
      match: {out_iface: ["tun*"]}
      action: drop
`

// TestIntegrationIfaceLater: a policy naming wg0 passes check and starts
// before wg0 exists; once the link appears (a veth named wg0 towards the
// client, with a route through it) the rule drops what comes in on it,
// while traffic through fw-c still passes. A reload naming another
// missing interface works too.
func TestIntegrationIfaceLater(t *testing.T) {
	for _, mode := range []string{"queue-all", "kernel-first"} {
		t.Run(mode, func(t *testing.T) {
			ifaceLater(t, strings.Replace(ifacePolicy, "offload: false", "offload: false\n  mode: "+mode, 1))
		})
	}
}

func ifaceLater(t *testing.T, policy string) {
	top := newTopo(t, "qif")
	servers(t, top)
	d := startDaemon(t, top, policy)
	if out, err := top.Firewall.Output(qguardBin, "check", d.cfgPath); err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	echo4 := hostPort(top.ServerIP4, portEcho)
	if err := dialFrom(top.Client, top.ClientIP4.String(), echo4); err != nil {
		t.Fatalf("before wg0, through fw-c: %v", err)
	}
	// wg0 appears: a second link between client and firewall, and the
	// client's route to the server goes through it.
	steps := [][]string{
		{"ip", "link", "add", "c-wg", "netns", top.Client.Name, "type", "veth", "peer", "name", "wg0", "netns", top.Firewall.Name},
	}
	for _, s := range steps {
		if out, err := top.Firewall.Output(s...); err != nil {
			t.Fatalf("%v: %v %s", s, err, out)
		}
	}
	for _, s := range []struct {
		fw   bool
		argv string
	}{
		{true, "ip addr add 198.18.3.1/24 dev wg0"}, {true, "ip link set wg0 up"},
		{false, "ip addr add 198.18.3.2/24 dev c-wg"}, {false, "ip link set c-wg up"},
		{false, "ip route add " + top.ServerIP4.String() + "/32 via 198.18.3.1 dev c-wg"},
	} {
		ns := top.Client
		if s.fw {
			ns = top.Firewall
		}
		if out, err := ns.Output(strings.Fields(s.argv)...); err != nil {
			t.Fatalf("%s: %v %s", s.argv, err, out)
		}
	}
	// The new link carries packets only once the kernel's linkwatch work
	// has given both ends a qdisc (until then they have noop, which drops
	// everything, ARP too); on a busy machine that work runs late, and a
	// connection tried before would fail without reaching the firewall.
	// A ping of the firewall's wg0 address proves the link (and resolves
	// both neighbours) before the drop is tested.
	if err := pingUntil(top.Client, "198.18.3.1", 5*time.Second); err != nil {
		t.Fatalf("the new link c-wg -> wg0 carries no ping: %v", err)
	}
	if err := dialFrom(top.Client, "198.18.3.2", echo4); err == nil {
		t.Error("through wg0: connected, want dropped by from-wg")
	}
	if err := dialFrom(top.Client, top.ClientIP6.String(), hostPort(top.ServerIP6, portEcho)); err != nil {
		t.Errorf("IPv6 through fw-c: %v", err)
	}
	st := d.status()
	found := false
	for _, r := range st.Rules {
		if r.Name == "from-wg" {
			found = r.Hits > 0
		}
	}
	if !found {
		// The kernel's own counters tell a status that misread them from
		// a packet that never came.
		nft, _ := top.Firewall.Output("nft", "list", "table", "inet", "qguard")
		t.Errorf("from-wg has no hits: %+v; the table:\n%s", st.Rules, nft)
	}
	d.writeConfig(strings.ReplaceAll(policy, "wg0", "wg9"))
	if !d.reload() {
		t.Fatalf("reload naming missing wg9 failed:\n%s", d.log.String())
	}
	if err := dialFrom(top.Client, "198.18.3.2", echo4); err != nil {
		t.Errorf("through wg0 after the rule moved to wg9: %v", err)
	}
}

// pingUntil pings dst from ns until one reply comes or wait has passed.
func pingUntil(ns topo.NS, dst string, wait time.Duration) error {
	var out string
	var err error
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); {
		if out, err = ns.Output("ping", "-n", "-q", "-c", "1", "-W", "1", dst); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%w: %s", err, out)
}
