package testutil

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// RealClientHello returns the first TLS record a crypto/tls client sends
// for serverName: a real ClientHello (with the post-quantum key share Go
// sends by default, about 1.8 KB), captured through net.Pipe.
func RealClientHello(t testing.TB, serverName string) []byte {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c2.Close()
	go func() {
		tc := tls.Client(c1, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
		_ = tc.Handshake() // fails once the pipe closes
		c1.Close()
	}()
	if err := c2.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(c2, hdr); err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, 5+int(binary.BigEndian.Uint16(hdr[3:5])))
	copy(rec, hdr)
	if _, err := io.ReadFull(c2, rec[5:]); err != nil {
		t.Fatal(err)
	}
	return rec
}
