package l7

import (
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/quic-go/quic-go"

	"github.com/qguard/qguard/internal/testutil"
)

// captureQUICGo captures a quic-go client's first flight until a
// QUICHello has read its whole ClientHello.
func captureQUICGo(t *testing.T, version quic.Version, tlsConf *tls.Config) [][]byte {
	t.Helper()
	q := NewQUICHello()
	n := 0
	return testutil.CaptureQUICGo(t, version, tlsConf, func(d []byte) bool {
		n++
		_, st := q.Feed(d)
		if st != NeedMore && st != Found {
			t.Fatalf("quic-go datagram %d: %s", n, st)
		}
		return st == Found
	})
}

// TestQUICGoClient reads the server name from the Initials of a real
// quic-go client, versions 1 and 2, short and long names, and hellos that
// span several packets (post-quantum key shares, many ALPN protocols), in
// every order of the captured datagrams.
func TestQUICGoClient(t *testing.T) {
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	var alpns []string
	for i := 0; i < 150; i++ {
		alpns = append(alpns, fmt.Sprintf("proto-%03d-%s", i, strings.Repeat("x", 30)))
	}
	for _, version := range []quic.Version{quic.Version1, quic.Version2} {
		for _, tc := range []struct {
			name  string
			host  string
			alpns []string
			min   int // datagrams the hello needs at least
		}{
			{"short", "A.test", []string{"h3"}, 2}, // X25519MLKEM768 makes the hello ~1.8 KB
			{"long", long, []string{"h3"}, 2},
			{"many alpns", "alpn.Blocked.test", alpns, 5},
		} {
			t.Run(fmt.Sprintf("%s/%s", version, tc.name), func(t *testing.T) {
				dgrams := captureQUICGo(t, version, &tls.Config{ServerName: tc.host, NextProtos: tc.alpns, InsecureSkipVerify: true})
				if v := quic.Version(uint32(dgrams[0][1])<<24 | uint32(dgrams[0][2])<<16 | uint32(dgrams[0][3])<<8 | uint32(dgrams[0][4])); v != version {
					t.Fatalf("first datagram of version %s", v)
				}
				t.Logf("%d datagrams of %d bytes and more", len(dgrams), len(dgrams[0]))
				if len(dgrams) < tc.min {
					t.Fatalf("the hello came in %d datagrams, want at least %d", len(dgrams), tc.min)
				}
				checkEveryOrder(t, dgrams, strings.ToLower(tc.host))
			})
		}
	}
}

// checkEveryOrder feeds dgrams in every order (a random sample of orders
// when there are many): the name must come out at the end of each, and no
// answer on the way may be final and wrong.
func checkEveryOrder(t *testing.T, dgrams [][]byte, want string) {
	t.Helper()
	var orders [][]int
	if len(dgrams) <= 6 {
		orders = permutations(len(dgrams))
	} else {
		r := rand.New(rand.NewPCG(uint64(len(dgrams)), 9))
		for i := 0; i < 500; i++ {
			orders = append(orders, r.Perm(len(dgrams)))
		}
	}
	q := NewQUICHello()
	for _, order := range orders {
		q.Reset()
		var name []byte
		var st Status
		for i, j := range order {
			name, st = q.Feed(dgrams[j])
			if st != NeedMore && st != Found {
				t.Fatalf("order %v step %d: %s", order, i, st)
			}
		}
		if st != Found || string(name) != want {
			t.Fatalf("order %v: %q %s, want %q", order, name, st, want)
		}
	}
	// A datagram cut short or with a changed byte never yields another name.
	for i, d := range dgrams {
		for _, cut := range []int{len(d) / 2, len(d) - 1} {
			q.Reset()
			if name, st := q.Feed(d[:cut]); st == Found && string(name) != want {
				t.Fatalf("datagram %d cut at %d: %q", i, cut, name)
			}
		}
	}
}
