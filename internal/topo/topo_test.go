package topo_test

import (
	"net"
	"os"
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
