package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

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
	httpResponse = "hello from the server namespace"
)

// servers starts an HTTP server on portHTTP and portHTTPAlt, a DNS server
// on portDNS (UDP), a TLS server on portTLS and a TCP echo server on
// portEcho, all in the server namespace on IPv4 and IPv6.
func servers(t *testing.T, top *topo.Topology) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, httpResponse) })
	for _, port := range []int{portHTTP, portHTTPAlt} {
		ln := listenIn(t, top.Server, "tcp", fmt.Sprintf("[::]:%d", port))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	pc := listenPacketIn(t, top.Server, "udp", fmt.Sprintf("[::]:%d", portDNS))
	go serveDNS(pc, top.ServerIP4)
	tln := tls.NewListener(listenIn(t, top.Server, "tcp", fmt.Sprintf("[::]:%d", portTLS)), &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	go serveEcho(tln)
	go serveEcho(listenIn(t, top.Server, "tcp", fmt.Sprintf("[::]:%d", portEcho)))
}

// serveEcho echoes every connection's bytes back (TLS connections after the
// handshake).
func serveEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

// serveDNS answers every A query with a, and AAAA queries with nothing.
func serveDNS(pc net.PacketConn, a netip.Addr) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
		b.EnableCompression()
		_ = b.StartQuestions()
		_ = b.Question(q)
		_ = b.StartAnswers()
		if q.Type == dnsmessage.TypeA {
			_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: a.As4()})
		}
		msg, err := b.Finish()
		if err == nil {
			pc.WriteTo(msg, from)
		}
	}
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

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "qguard e2e"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"good.example", "bad.example", "www.bad.example"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
