package testutil

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// CaptureQUICGo dials a UDP socket on loopback with a real quic-go client
// and returns the datagrams it sends until done, called with each one,
// reports that the whole ClientHello has been seen (no server answers:
// the client only sends its first flight and retransmissions of it).
func CaptureQUICGo(t *testing.T, version quic.Version, tlsConf *tls.Config, done func(dgram []byte) bool) [][]byte {
	t.Helper()
	t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	client, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_, _ = quic.Dial(ctx, client, sink.LocalAddr(), tlsConf, &quic.Config{Versions: []quic.Version{version}})
	}()
	defer func() { cancel(); <-finished }()

	var dgrams [][]byte
	buf := make([]byte, 65536)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := sink.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		n, _, err := sink.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(dgrams), err)
		}
		d := append([]byte(nil), buf[:n]...)
		dgrams = append(dgrams, d)
		if done(d) {
			return dgrams
		}
	}
}

// ReadHex reads a testdata file of hex lines; lines starting with # are
// comments.
func ReadHex(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var s strings.Builder
	for _, l := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(l, "#") {
			s.WriteString(strings.TrimSpace(l))
		}
	}
	b, err := hex.DecodeString(s.String())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}
