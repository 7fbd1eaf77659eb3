package ruletest

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/qguard/qguard/internal/topo"
	"golang.org/x/net/dns/dnsmessage"
)

// Answers of the DNS responder: the server's own addresses.
var (
	dnsAnswer4 = [4]byte{198, 18, 2, 2}
	dnsAnswer6 = [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 2, 14: 0, 15: 2}
)

// servers are the listeners of one file's server namespace.
type servers struct {
	closers []io.Closer
	wg      sync.WaitGroup
}

// startServers opens every listener of plan inside ns. Listeners are
// dual-stack: one socket answers IPv4 and IPv6.
func startServers(ns topo.NS, plan serverPlan) (s *servers, err error) {
	s = &servers{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	for port, k := range plan.tcp {
		var ln net.Listener
		if err := ns.Do(func() (err error) {
			ln, err = net.Listen("tcp", ":"+strconv.Itoa(int(port)))
			return err
		}); err != nil {
			return s, fmt.Errorf("listen on tcp port %d: %w", port, err)
		}
		s.closers = append(s.closers, ln)
		if err := s.serveTCP(ln, k); err != nil {
			return s, err
		}
	}
	for port, k := range plan.udp {
		var pc net.PacketConn
		if err := ns.Do(func() (err error) {
			pc, err = net.ListenPacket("udp", ":"+strconv.Itoa(int(port)))
			return err
		}); err != nil {
			return s, fmt.Errorf("listen on udp port %d: %w", port, err)
		}
		s.closers = append(s.closers, pc)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			serveUDP(pc, k == KindDNS)
		}()
	}
	return s, nil
}

func (s *servers) serveTCP(ln net.Listener, k Kind) error {
	switch k {
	case KindHTTP:
		srv := &http.Server{Handler: http.HandlerFunc(httpAnswer), ReadHeaderTimeout: 5 * time.Second}
		s.closers = append(s.closers, srv)
		s.wg.Add(1)
		go func() { defer s.wg.Done(); _ = srv.Serve(ln) }()
		return nil
	case KindTLS:
		cert, err := selfSigned()
		if err != nil {
			return err
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		acceptLoop(ln, func(c net.Conn) {
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			switch k {
			case KindDNS:
				serveDNSTCP(c)
			case KindTLS:
				if err := c.(*tls.Conn).Handshake(); err == nil {
					_, _ = io.Copy(c, c)
				}
			default:
				_, _ = io.Copy(c, c)
			}
		})
	}()
	return nil
}

func acceptLoop(ln net.Listener, handle func(net.Conn)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			handle(c)
		}()
	}
}

func (s *servers) close() {
	for _, c := range s.closers {
		if srv, ok := c.(*http.Server); ok {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = srv.Shutdown(ctx)
			cancel()
			continue
		}
		_ = c.Close()
	}
	s.wg.Wait()
}

func httpAnswer(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "qguard-test host=%s path=%s\n", r.Host, r.URL.Path)
}

func serveUDP(pc net.PacketConn, dns bool) {
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		out := buf[:n]
		if dns {
			if out = dnsAnswer(buf[:n]); out == nil {
				continue
			}
		}
		_, _ = pc.WriteTo(out, from)
	}
}

func serveDNSTCP(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(r, q); err != nil {
			return
		}
		a := dnsAnswer(q)
		if a == nil {
			return
		}
		if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(a)))); err != nil {
			return
		}
		if _, err := c.Write(a); err != nil {
			return
		}
	}
}

// dnsAnswer answers A with the server's IPv4 address, AAAA with its IPv6
// address, TXT with "qguard-test", and anything else with an empty NOERROR.
func dnsAnswer(query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
	switch q.Type {
	case dnsmessage.TypeA:
		_ = b.AResource(rh, dnsmessage.AResource{A: dnsAnswer4})
	case dnsmessage.TypeAAAA:
		_ = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: dnsAnswer6})
	case dnsmessage.TypeTXT:
		_ = b.TXTResource(rh, dnsmessage.TXTResource{TXT: []string{"qguard-test"}})
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

var (
	certOnce sync.Once
	cert     tls.Certificate
	certErr  error
)

// selfSigned makes one throwaway ECDSA certificate per process; clients
// skip verification, they only need a handshake to complete.
func selfSigned() (tls.Certificate, error) {
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			certErr = fmt.Errorf("generate TLS key: %w", err)
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: "qguard-test"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			DNSNames:     []string{"*"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			certErr = fmt.Errorf("create TLS certificate: %w", err)
			return
		}
		cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	})
	return cert, certErr
}
