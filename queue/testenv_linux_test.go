package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/pktbuild"
	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
)

// qenv is one client -> firewall -> server topology shared by the
// integration subtests; each subtest installs its own FORWARD rules.
type qenv struct {
	top *topo.Topology
}

func newQEnv(t *testing.T) *qenv {
	t.Helper()
	testutil.NeedRoot(t, "creates network namespaces and binds NFQUEUE queues")
	top := testutil.NewTopology(t, &topo.Options{Prefix: "qgq"})
	// Resolve the neighbours first: IPv6 neighbour discovery right after
	// the links come up can take a second, longer than tests wait.
	for _, dst := range []string{top.ServerIP4.String(), top.ServerIP6.String()} {
		if out, err := top.Client.Output("ping", "-c", "1", "-W", "5", dst); err != nil {
			t.Fatalf("ping %s through the firewall: %v\n%s", dst, err, out)
		}
	}
	return &qenv{top: top}
}

// steer replaces the firewall's FORWARD rules (IPv4 and IPv6) with one rule.
func (e *qenv) steer(t *testing.T, rule string) {
	t.Helper()
	for _, tool := range []string{"iptables-nft", "ip6tables-nft"} {
		if err := e.top.Firewall.Run(tool, "-t", "filter", "-F", "FORWARD"); err != nil {
			t.Fatal(err)
		}
		if rule == "" {
			continue
		}
		if err := e.top.Firewall.Run(append([]string{tool, "-t", "filter", "-A", "FORWARD"}, strings.Fields(rule)...)...); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, tool := range []string{"iptables-nft", "ip6tables-nft"} {
			_ = e.top.Firewall.Run(tool, "-t", "filter", "-F", "FORWARD")
		}
	})
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// open binds queues inside the firewall namespace.
func (e *qenv) open(t *testing.T, c *Config) *Queues {
	t.Helper()
	if c.Logger == nil {
		c.Logger = quietLogger()
	}
	var q *Queues
	err := e.top.Firewall.Do(func() (err error) {
		q, err = Open(c)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// run starts q.Run and returns a function that stops it and returns its
// error.
func run(t *testing.T, q *Queues, h Handler) func() error {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- q.Run(ctx, h) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(10 * time.Second):
				err = errors.New("Run did not return 10s after cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// sink listens for UDP on the server.
func (e *qenv) sink(t *testing.T, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := e.top.Server.Do(func() (err error) {
		c, err = net.ListenUDP("udp", &net.UDPAddr{Port: port})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(8 << 20)
	t.Cleanup(func() { c.Close() })
	return c
}

// collect reads datagrams until want arrived or nothing came for idle.
func collect(c *net.UDPConn, want int, idle time.Duration) [][]byte {
	var out [][]byte
	buf := make([]byte, 65536)
	for len(out) < want {
		_ = c.SetReadDeadline(time.Now().Add(idle))
		n, err := c.Read(buf)
		if err != nil {
			break
		}
		out = append(out, append([]byte(nil), buf[:n]...))
	}
	return out
}

// client returns a UDP socket in the client namespace connected to dst.
func (e *qenv) client(t *testing.T, dst netip.Addr, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := e.top.Client.Do(func() (err error) {
		c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(port))))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c *net.UDPConn, n int, payload string) {
	t.Helper()
	for i := range n {
		if _, err := fmt.Fprintf(c, "%s %04d", payload, i); err != nil {
			t.Fatal(err)
		}
	}
}

// upcase returns a copy of the IP packet b with its UDP payload upper-cased
// and the UDP checksum (and for IPv4 the header checksum) recomputed.
func upcase(b []byte) []byte {
	out := append([]byte(nil), b...)
	l4 := 40
	if out[0]>>4 == 4 {
		l4 = int(out[0]&0xf) * 4
	}
	payload := out[l4+8:]
	copy(payload, bytes.ToUpper(payload))
	pktbuild.SetChecksums(out)
	return out
}
