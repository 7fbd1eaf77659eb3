package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qguard/qguard/internal/topo"
)

// quicDialReuse sends a junk datagram, completes a QUIC handshake for an
// allowed decoy name, then one for name, all from one UDP socket: the
// second connection shares the first one's 5-tuple (and its decided flow).
func quicDialReuse(ns topo.NS, addr, name string, v quic.Version) error {
	var pc net.PacketConn
	if err := ns.Do(func() (err error) {
		pc, err = net.ListenPacket("udp", ":0")
		return err
	}); err != nil {
		return err
	}
	tr := &quic.Transport{Conn: pc}
	defer tr.Close()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return err
	}
	if _, err := pc.WriteTo([]byte("junk first"), ua); err != nil {
		return err
	}
	dial := func(n string) (*quic.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return tr.Dial(ctx, ua, &tls.Config{ServerName: n, InsecureSkipVerify: true, NextProtos: []string{"qguard-e2e"}},
			&quic.Config{Versions: []quic.Version{v}, HandshakeIdleTimeout: 2 * time.Second})
	}
	decoy, err := dial("decoy.ok.test")
	if err != nil {
		return fmt.Errorf("decoy: %w", err)
	}
	defer decoy.CloseWithError(0, "")
	c, err := dial(name)
	if err != nil {
		return err
	}
	return c.CloseWithError(0, "")
}

// TestIntegrationEvasionQUICReuse: a junk datagram first, then an allowed
// QUIC connection, then a second connection on the same 5-tuple: the
// second is judged on its own server name, versions 1 and 2.
func TestIntegrationEvasionQUICReuse(t *testing.T) {
	e := newEvasionEnv(t, "qer")
	quicServer(t, e.top, e.seen)
	for _, tc := range []struct {
		tag string
		v   quic.Version
		srv fmt.Stringer
	}{{"reuse1", quic.Version1, e.top.ServerIP4}, {"reuse2", quic.Version2, e.top.ServerIP6}} {
		t.Run(tc.tag, func(t *testing.T) {
			e.both(t, "quic", "quic"+tc.tag, func(name string) {
				_ = quicDialReuse(e.top.Client, hostPort(tc.srv, evQUICPort), name, tc.v)
			})
			if e.seen.count("quic", "decoy.ok.test") == 0 {
				t.Errorf("the decoy connection never reached the server")
			}
		})
	}
}
