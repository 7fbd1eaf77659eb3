package l7

import (
	"testing"

	"github.com/qguard/qguard/internal/pktbuild"
)

// feed splits stream into segments of size seg and adds them in order.
func feed(h *HelloBuffer, stream []byte, seq uint32, seg int) Status {
	st := Unset
	for len(stream) > 0 {
		c := min(seg, len(stream))
		st = h.Add(seq, stream[:c])
		seq += uint32(c)
		stream = stream[c:]
	}
	return st
}

func TestHelloBuffer(t *testing.T) {
	big := pktbuild.ClientHello("Big.Example", 1800) // ~1.9 KB, two 1448-byte segments
	multi := pktbuild.Records(pktbuild.Handshake(pktbuild.HelloBody(pktbuild.SNIExt("multi.example"), pktbuild.TLSExt(21, make([]byte, 100)))), 7)
	tests := []struct {
		name   string
		stream []byte
		seg    int
		want   string
		st     Status
	}{
		{"one segment", pktbuild.ClientHello("a.example", 0), 1448, "a.example", Found},
		{"two segments", big, 1448, "big.example", Found},
		{"byte by byte", big, 1, "big.example", Found},
		{"many records", multi, 1448, "multi.example", Found},
		{"many records byte by byte", multi, 1, "multi.example", Found},
		{"no sni", pktbuild.Records(pktbuild.Handshake(pktbuild.HelloBody()), 1<<14), 100, "", Absent},
		{"not tls", []byte("GET / HTTP/1.1\r\n\r\n"), 3, "", NotProtocol},
		{"server hello", []byte{22, 3, 3, 0, 4, 2, 0, 0, 0}, 3, "", NotProtocol},
		{"alert after first record", append(pktbuild.Records(pktbuild.Handshake(pktbuild.HelloBody(pktbuild.SNIExt("x"))), 20)[:25], 21, 3, 3, 0, 2, 1, 0), 5, "", Malformed},
		{"too large", pktbuild.Records(pktbuild.Handshake(pktbuild.HelloBody(pktbuild.TLSExt(21, make([]byte, HelloBufferSize)))), 1<<14), 1448, "", TooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h HelloBuffer
			st := feed(&h, tt.stream, 1000, tt.seg)
			if st != tt.st || string(h.ServerName()) != tt.want || h.Status() != st {
				t.Errorf("Add = %s, name %q; want %s, %q", st, h.ServerName(), tt.st, tt.want)
			}
		})
	}
}

// TestHelloBufferSequence replays segments out of order, duplicated and
// overlapping, across the sequence-number wrap.
func TestHelloBufferSequence(t *testing.T) {
	ch := pktbuild.ClientHello("seq.example", 3000)
	var seq0 uint32 = 0xffffff00 // wraps inside the hello
	var h HelloBuffer
	if st := h.Add(seq0, ch[:1000]); st != NeedMore {
		t.Fatalf("first: %s", st)
	}
	if st := h.Add(seq0+2000, ch[2000:]); st != NeedMore {
		t.Fatalf("after gap: %s", st)
	}
	if st := h.Add(seq0, ch[:1000]); st != NeedMore {
		t.Fatalf("retransmission: %s", st)
	}
	corrupt := append([]byte{}, ch[500:1500]...)
	corrupt[0] ^= 0xff // overlapping bytes differ: the first copy wins
	if st := h.Add(seq0+500, corrupt); st != NeedMore {
		t.Fatalf("overlap: %s", st)
	}
	if st := h.Add(seq0+1500, ch[1500:]); st != Found || string(h.ServerName()) != "seq.example" {
		t.Fatalf("rest: %s %q", st, h.ServerName())
	}
	if st := h.Add(seq0+uint32(len(ch)), []byte{23, 3, 3}); st != Found {
		t.Errorf("status after done: %s", st)
	}
	h.Reset()
	if st := feed(&h, pktbuild.ClientHello("again.example", 0), 5, 10); st != Found || string(h.ServerName()) != "again.example" {
		t.Errorf("after Reset: %s %q", st, h.ServerName())
	}
}

// TestHelloBufferTruncated feeds every prefix of a multi-record hello: all
// must need more.
func TestHelloBufferTruncated(t *testing.T) {
	ch := pktbuild.Records(pktbuild.Handshake(pktbuild.HelloBody(pktbuild.SNIExt("cut.example"))), 30)
	for i := range len(ch) {
		var h HelloBuffer
		if st := feed(&h, ch[:i], 0, 7); i > 0 && st != NeedMore {
			t.Errorf("cut at %d: %s", i, st)
		}
	}
}

func TestHelloBufferAllocs(t *testing.T) {
	big := pktbuild.ClientHello("big.example", 1800)
	h := new(HelloBuffer)
	if n := testing.AllocsPerRun(100, func() {
		h.Reset()
		feed(h, big, 0, 1448)
	}); n != 0 {
		t.Errorf("%v allocs", n)
	}
}

func BenchmarkHelloBuffer(b *testing.B) {
	big := pktbuild.ClientHello("big.example", 1800)
	h := new(HelloBuffer)
	b.ReportAllocs()
	b.SetBytes(int64(len(big)))
	for b.Loop() {
		h.Reset()
		if feed(h, big, 0, 1448) != Found {
			b.Fatal("no server name")
		}
	}
}
