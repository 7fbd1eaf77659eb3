package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qguard/qguard/internal/topo"
)

// quicServer accepts QUIC (versions 1 and 2) on UDP evQUICPort in the server
// namespace and records each client's server name as "quic".
func quicServer(t *testing.T, top *topo.Topology, seen *seenNames) {
	t.Helper()
	pc := listenPacketIn(t, top.Server, "udp", fmt.Sprintf("[::]:%d", evQUICPort))
	tcfg := &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, NextProtos: []string{"qguard-e2e"},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			seen.add("quic", h.ServerName)
			return nil, nil
		}}
	ln, err := quic.Listen(pc, tcfg, &quic.Config{Versions: []quic.Version{quic.Version1, quic.Version2}})
	if err != nil {
		t.Fatalf("QUIC listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			go func() {
				time.Sleep(time.Second)
				c.CloseWithError(0, "")
			}()
		}
	}()
}

// quicDial completes a QUIC handshake for name from ns, the ClientHello
// padded with alpns ALPN names. With reuse it first sends a junk datagram
// and completes a handshake for an allowed decoy name from the same UDP
// socket: the connection for name then shares the decoy's 5-tuple (and its
// decided flow).
func quicDial(ns topo.NS, addr, name string, v quic.Version, alpns int, reuse bool) error {
	var pc net.PacketConn
	if err := ns.Do(func() (err error) {
		pc, err = net.ListenPacket("udp", ":0")
		return err
	}); err != nil {
		return err
	}
	defer pc.Close()
	tr := &quic.Transport{Conn: pc}
	defer tr.Close()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return err
	}
	protos := []string{"qguard-e2e"}
	for i := 0; i < alpns; i++ {
		// Padding the hello with ALPN names spreads it over several Initials.
		protos = append(protos, fmt.Sprintf("x-%03d-%s", i, strings.Repeat("p", 40)))
	}
	dial := func(n string) (*quic.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return tr.Dial(ctx, ua, &tls.Config{ServerName: n, InsecureSkipVerify: true, NextProtos: protos},
			&quic.Config{Versions: []quic.Version{v}, HandshakeIdleTimeout: 2 * time.Second})
	}
	if reuse {
		if _, err := pc.WriteTo([]byte("junk first"), ua); err != nil {
			return err
		}
		decoy, err := dial("decoy.ok.test")
		if err != nil {
			return fmt.Errorf("decoy: %w", err)
		}
		defer decoy.CloseWithError(0, "")
	}
	c, err := dial(name)
	if err != nil {
		return err
	}
	return c.CloseWithError(0, "")
}

// TestIntegrationEvasionQUIC: sni rules hold for QUIC (HTTP/3's transport),
// versions 1 and 2, with ClientHellos over one or several Initial packets,
// and for a second connection on the 5-tuple of an allowed one (after a
// junk datagram), judged on its own server name.
func TestIntegrationEvasionQUIC(t *testing.T) {
	e := newEvasionEnv(t, "qeq")
	quicServer(t, e.top, e.seen)
	for _, tc := range []struct {
		tag   string
		v     quic.Version
		alpns int
		reuse bool
		srv   fmt.Stringer
	}{
		{"v1", quic.Version1, 0, false, e.top.ServerIP4},
		{"v2", quic.Version2, 0, false, e.top.ServerIP6},
		{"v1big", quic.Version1, 60, false, e.top.ServerIP4},
		{"v2big", quic.Version2, 60, false, e.top.ServerIP6},
		{"reuse1", quic.Version1, 0, true, e.top.ServerIP4},
		{"reuse2", quic.Version2, 0, true, e.top.ServerIP6},
	} {
		t.Run(tc.tag, func(t *testing.T) {
			decoys := e.seen.count("quic", "decoy.ok.test")
			e.both(t, "quic", "quic"+tc.tag, func(name string) {
				_ = quicDial(e.top.Client, hostPort(tc.srv, evQUICPort), name, tc.v, tc.alpns, tc.reuse)
			})
			if tc.reuse && e.seen.count("quic", "decoy.ok.test") == decoys {
				t.Errorf("the decoy connection never reached the server")
			}
		})
	}
}
