package testsrv

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
)

// AcceptLoop calls handle for every connection ln accepts, each in its own
// goroutine, and closes the connection after; it returns when ln is
// closed and every handler has returned.
func AcceptLoop(ln net.Listener, handle func(net.Conn)) {
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

// Echo sends c's bytes back until the client closes; a TLS connection
// completes its handshake first.
func Echo(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		if err := tc.Handshake(); err != nil {
			return
		}
	}
	_, _ = io.Copy(c, c)
}

// ServePacket answers every datagram pc reads with reply(datagram), sent
// back to its source; a nil reply sends nothing. It returns when pc is
// closed.
func ServePacket(pc net.PacketConn, reply func([]byte) []byte) {
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if out := reply(buf[:n]); out != nil {
			_, _ = pc.WriteTo(out, from)
		}
	}
}

// EchoPacket is ServePacket's reply for a UDP echo server.
func EchoPacket(in []byte) []byte { return in }
