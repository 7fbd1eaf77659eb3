package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/qguard/qguard/internal/testsrv"
	"github.com/qguard/qguard/internal/topo"
)

// Ports of the evasion suite's servers, in the server namespace.
const (
	evDNSPort   = 53   // DNS over UDP and TCP
	evHTTPPort  = 8080 // HTTP/1.1 with keep-alive
	evTLSPort   = 443  // TLS, then echo
	evQUICPort  = 443  // QUIC (UDP)
	evDropPort  = 9002 // a UDP port the policy drops
	evAllowPort = 9003 // a UDP port nothing drops
)

// seenNames records what each server saw: the oracle of the evasion suite.
// A blocked technique must leave no trace of its name at the server, the
// allowed variant must leave one.
type seenNames struct {
	mu   sync.Mutex
	seen map[string]int // "dns:name", "http:host", "tls:sni", "quic:sni", "udp:port:payload"
}

func (s *seenNames) add(kind, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[kind+":"+strings.ToLower(strings.TrimSuffix(name, "."))]++
}

func (s *seenNames) count(kind, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[kind+":"+strings.ToLower(name)]
}

// evasionServers starts the DNS (UDP and TCP, github.com/miekg/dns), HTTP,
// TLS and UDP servers of the evasion suite and returns what they see.
func evasionServers(t *testing.T, top *topo.Topology) *seenNames {
	t.Helper()
	seen := &seenNames{seen: map[string]int{}}
	dnsHandler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			seen.add("dns", q.Name)
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   top.ServerIP4.AsSlice()})
			}
		}
		_ = w.WriteMsg(m)
	})
	pc := listenPacketIn(t, top.Server, "udp", fmt.Sprintf("[::]:%d", evDNSPort))
	udpSrv := &dns.Server{PacketConn: pc, Handler: dnsHandler}
	go udpSrv.ActivateAndServe()
	tcpSrv := &dns.Server{Listener: listenIn(t, top.Server, "tcp", fmt.Sprintf("[::]:%d", evDNSPort)), Handler: dnsHandler,
		// Several queries on one connection, as RFC 7766 allows.
		MaxTCPQueries: -1, IdleTimeout: func() time.Duration { return 5 * time.Second }}
	go tcpSrv.ActivateAndServe()
	t.Cleanup(func() { udpSrv.Shutdown(); tcpSrv.Shutdown() })

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		seen.add("http", r.Host)
		io.WriteString(w, httpResponse)
	})
	hsrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go hsrv.Serve(listenIn(t, top.Server, "tcp", fmt.Sprintf("[::]:%d", evHTTPPort)))
	t.Cleanup(func() { hsrv.Close() })

	cert := selfSigned(t)
	tcfg := &tls.Config{Certificates: []tls.Certificate{cert}, GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		seen.add("tls", h.ServerName)
		return nil, nil
	}}
	go testsrv.AcceptLoop(tls.NewListener(listenIn(t, top.Server, "tcp", fmt.Sprintf("[::]:%d", evTLSPort)), tcfg), testsrv.Echo)

	for _, port := range []int{evDropPort, evAllowPort} {
		u := listenPacketIn(t, top.Server, "udp", fmt.Sprintf("[::]:%d", port))
		go func(port int) {
			buf := make([]byte, 2048)
			for {
				n, _, err := u.ReadFrom(buf)
				if err != nil {
					return
				}
				seen.add("udp", fmt.Sprintf("%d:%s", port, buf[:n]))
			}
		}(port)
	}
	return seen
}

// waitSeen waits up to d for the server to record kind:name.
func (s *seenNames) waitSeen(kind, name string, d time.Duration) bool {
	for end := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if s.count(kind, name) > 0 {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// tcpIn connects from ns to addr with Nagle off, so each Write is its own
// segment (the client controls segmentation, as an attacker would).
func tcpIn(t *testing.T, ns topo.NS, addr string) *net.TCPConn {
	t.Helper()
	c, err := dialIn(ns, "tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	tc := c.(*net.TCPConn)
	_ = tc.SetNoDelay(true)
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	t.Cleanup(func() { tc.Close() })
	return tc
}

// segments writes each part as its own TCP segment, a pause apart.
func segments(c net.Conn, parts ...[]byte) error {
	for i, p := range parts {
		if i > 0 {
			time.Sleep(30 * time.Millisecond)
		}
		if _, err := c.Write(p); err != nil {
			return err
		}
	}
	return nil
}
