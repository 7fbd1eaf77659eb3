package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/qguard/qguard/internal/testsrv"
	"github.com/qguard/qguard/internal/topo"
)

// Ports the servers listen on, in the server namespace, on every address.
const (
	portHTTP     = 8080
	portHTTPAlt  = 8081
	portDNS      = 53
	portTLS      = 8443
	portEcho     = 9000
	portUDPSink  = 9001
	httpResponse = testsrv.HTTPBody
)

// servers starts an HTTP server on portHTTP and portHTTPAlt, a DNS server
// on portDNS (UDP), a TLS echo server on portTLS and a TCP echo server on
// portEcho, all in the server namespace on IPv4 and IPv6 (package
// testsrv, the servers `qguard test` runs too).
func servers(t *testing.T, top *topo.Topology) {
	t.Helper()
	for _, port := range []int{portHTTP, portHTTPAlt} {
		ln := listenIn(t, top.Server, "tcp", fmt.Sprintf("[::]:%d", port))
		srv := &http.Server{Handler: testsrv.HTTPHandler(), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	pc := listenPacketIn(t, top.Server, "udp", fmt.Sprintf("[::]:%d", portDNS))
	go testsrv.DNS{A4: top.ServerIP4}.ServeUDP(pc)
	tln := tls.NewListener(listenIn(t, top.Server, "tcp", fmt.Sprintf("[::]:%d", portTLS)), &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	go testsrv.AcceptLoop(tln, testsrv.Echo)
	go testsrv.AcceptLoop(listenIn(t, top.Server, "tcp", fmt.Sprintf("[::]:%d", portEcho)), testsrv.Echo)
}

// selfSigned is testsrv's throwaway certificate.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	c, err := testsrv.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dnsQuery asks the DNS server at server for name's A record from inside
// ns and returns the answer's address.
func dnsQuery(ns topo.NS, server netip.Addr, name string) (netip.Addr, error) {
	c, err := dialIn(ns, "udp", hostPort(server, portDNS), time.Second)
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	id := uint16(time.Now().UnixNano())
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, err := b.Finish()
	if err != nil {
		return netip.Addr{}, err
	}
	if _, err := c.Write(q); err != nil {
		return netip.Addr{}, err
	}
	_ = c.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("query %s: %w", name, err)
	}
	var p dnsmessage.Parser
	h, err := p.Start(buf[:n])
	if err != nil || h.ID != id {
		return netip.Addr{}, fmt.Errorf("query %s: bad answer (%v)", name, err)
	}
	_ = p.SkipAllQuestions()
	ans, err := p.AllAnswers()
	if err != nil || len(ans) == 0 {
		return netip.Addr{}, fmt.Errorf("query %s: no answer (%v)", name, err)
	}
	a, ok := ans[0].Body.(*dnsmessage.AResource)
	if !ok {
		return netip.Addr{}, fmt.Errorf("query %s: answer is not an A record", name)
	}
	return netip.AddrFrom4(a.A), nil
}

// httpGet fetches / from addr (host:port) from inside ns.
func httpGet(ns topo.NS, addr string) error {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: nsDialer(ns), DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if string(body) != httpResponse {
		return fmt.Errorf("GET %s: unexpected body %q", addr, body)
	}
	return nil
}

// tlsHello connects to addr from ns, sends a ClientHello for serverName and
// completes the handshake and one echo.
func tlsHello(ns topo.NS, addr, serverName string) error {
	raw, err := dialIn(ns, "tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(time.Second))
	c := tls.Client(raw, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err := c.HandshakeContext(context.Background()); err != nil {
		return fmt.Errorf("TLS handshake for %s: %w", serverName, err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("TLS echo for %s: %w", serverName, err)
	}
	return nil
}
