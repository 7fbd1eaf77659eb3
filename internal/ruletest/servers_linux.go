package ruletest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/qguard/qguard/internal/testsrv"
	"github.com/qguard/qguard/internal/topo"
)

// dns answers with the server's own addresses (docs/ruletest.md).
var dnsServer = testsrv.DNS{A4: netip.MustParseAddr("198.18.2.2"), A6: netip.MustParseAddr("2001:db8:2::2")}

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
			if k == KindDNS {
				dnsServer.ServeUDP(pc)
			} else {
				testsrv.ServePacket(pc, testsrv.EchoPacket)
			}
		}()
	}
	return s, nil
}

func (s *servers) serveTCP(ln net.Listener, k Kind) error {
	switch k {
	case KindHTTP:
		srv := &http.Server{Handler: testsrv.HTTPHandler(), ReadHeaderTimeout: 5 * time.Second}
		s.closers = append(s.closers, srv)
		s.wg.Add(1)
		go func() { defer s.wg.Done(); _ = srv.Serve(ln) }()
		return nil
	case KindTLS:
		tc, err := testsrv.TLSConfig()
		if err != nil {
			return err
		}
		ln = tls.NewListener(ln, tc)
	}
	serve := testsrv.Echo
	if k == KindDNS {
		serve = dnsServer.ServeTCP
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		testsrv.AcceptLoop(ln, func(c net.Conn) {
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			serve(c)
		})
	}()
	return nil
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
