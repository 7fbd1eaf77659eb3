package topo_test

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
)

func TestIntegrationTopology(t *testing.T) {
	testutil.NeedRoot(t, "to create namespaces")
	top, err := topo.NewTopology(&topo.Options{Prefix: testutil.ProcessPrefix("qgtt")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = top.Close() })
	for _, dst := range []string{top.ServerIP4.String(), top.ServerIP6.String()} {
		out, err := top.Client.Output("ping", "-c", "1", "-W", "2", dst)
		if err != nil {
			t.Fatalf("ping %s through firewall: %v\n%s", dst, err, out)
		}
	}
	// A socket opened inside Do stays in the namespace.
	var ln net.Listener
	if err := top.Server.Do(func() (err error) {
		ln, err = net.Listen("tcp", "[::]:8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
	}()
	if err := top.Client.Do(func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(top.ServerIP6.String(), "8080"), 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Fatalf("tcp through firewall: %v", err)
	}
	if err := top.Close(); err != nil {
		t.Fatal(err)
	}
	left, err := topo.Leftovers(testutil.ProcessPrefix("qgtt"))
	if err != nil || len(left) != 0 {
		t.Fatalf("namespaces left behind: %v %v", left, err)
	}
	if _, err := os.Stat("/var/run/netns/" + top.Client.Name); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("client namespace still present: %v", err)
	}
}

// TestIntegrationIPv6ReadyAtOnce: a new topology answers the first
// neighbour solicitation of each hop. Before NewTopology waited for the
// kernel to configure IPv6 on every link, the firewall dropped the
// client's first solicitation (no multicast route on fw-c yet), so the
// first IPv6 packet waited a second for the retransmission, and failed a
// short ping under load.
func TestIntegrationIPv6ReadyAtOnce(t *testing.T) {
	testutil.NeedRoot(t, "to create namespaces")
	top, err := topo.NewTopology(&topo.Options{Prefix: testutil.ProcessPrefix("qgt6")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = top.Close() })
	if out, err := top.Client.Output("ping", "-6", "-n", "-c", "1", "-W", "5", top.ServerIP6.String()); err != nil {
		t.Fatalf("first IPv6 ping: %v\n%s", err, out)
	}
	for _, n := range []topo.NS{top.Client, top.Server} {
		snmp6, err := n.Output("cat", "/proc/net/snmp6")
		if err != nil {
			t.Fatal(err)
		}
		if got := snmp6Field(snmp6, "Icmp6OutNeighborSolicits"); got != 1 {
			t.Errorf("%s sent %d neighbour solicitations for the first ping; want 1 (the first one answered)", n.Name, got)
		}
	}
}

// snmp6Field reads a counter from /proc/net/snmp6 (one "name value" a line).
func snmp6Field(text, name string) int {
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return -1
}
