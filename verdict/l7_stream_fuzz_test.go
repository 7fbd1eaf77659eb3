package verdict

import (
	"fmt"
	"slices"
	"testing"

	"github.com/qguard/qguard/internal/pktbuild"
	"github.com/qguard/qguard/verdict/l7"
)

// streamUnits runs a DNS or HTTP stream over segs and lists the messages it
// reads, as the pipeline does: every message of each segment, stopping at
// one that is cut short and after one that ends the stream's reading.
func streamUnits(kind uint8, segs [][]byte) []string {
	ft := NewFlowTable(&FlowConfig{Capacity: 8, HelloBuffers: 2})
	s := &l7Stream{kind: kind}
	var out []string
	for _, seg := range segs {
		x := &inspect{ft: ft, stream: s, sdata: seg}
		for i := 0; ; i++ {
			if i > len(seg)+maxQuestions+1 {
				panic("more messages than bytes in a segment")
			}
			var name []byte
			var st l7.Status
			var ok bool
			if kind == needDNS {
				name, st, ok = x.dnsNext()
			} else {
				name, st, ok = x.httpNext()
			}
			if !ok || st == l7.NeedMore {
				break
			}
			out = append(out, fmt.Sprintf("%q %s", name, st))
			if kind == needHost && (st == l7.NotProtocol || st == l7.Malformed || st == l7.TooLarge) {
				return out // the pipeline stops reading the connection as HTTP here
			}
			if len(x.sdata) == 0 && !x.inMsg {
				break
			}
		}
	}
	return out
}

// cuts splits b at the offsets given by the bytes of at.
func cuts(b, at []byte) [][]byte {
	var segs [][]byte
	for _, c := range at {
		if len(b) == 0 {
			break
		}
		n := 1 + int(c)%len(b)
		segs = append(segs, b[:n])
		b = b[n:]
	}
	if len(b) > 0 {
		segs = append(segs, b)
	}
	return segs
}

// fuzzStream checks that a stream reads the same messages however the
// bytes are cut into segments: a split must never hide a message.
func fuzzStream(t *testing.T, kind uint8, b, at []byte) {
	whole := streamUnits(kind, [][]byte{b})
	split := streamUnits(kind, cuts(b, at))
	if !slices.Equal(whole, split) {
		t.Fatalf("%q cut by %v:\n whole %q\n split %q", b, at, whole, split)
	}
}

func FuzzDNSStream(f *testing.F) {
	two := append(pktbuild.TCPDNS(pktbuild.DNSQuery(1, "a.example")), pktbuild.TCPDNS(pktbuild.DNSQuery(2, "b.blocked.test", "c.example"))...)
	f.Add(two, []byte{1, 13, 2})
	f.Add(append([]byte{0, 3, 1, 2, 3}, two...), []byte{0})
	f.Add(append(pktbuild.TCPDNS(make([]byte, 300)), pktbuild.TCPDNS(pktbuild.DNSQuery(3, "x"))...), []byte{200, 5})
	f.Fuzz(func(t *testing.T, b, at []byte) { fuzzStream(t, needDNS, b, at) })
}

func FuzzHTTPStream(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: b.blocked.test\r\n\r\n"), []byte{5, 30})
	f.Add([]byte("\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET http://x/ HTTP/1.1\r\n\r\n"), []byte{3, 3, 40})
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.0\n\n"), []byte{60, 1, 1, 1})
	f.Add([]byte("CONNECT a:443 HTTP/1.1\r\n\r\n\x16\x03\x01"), []byte{10})
	f.Fuzz(func(t *testing.T, b, at []byte) { fuzzStream(t, needHost, b, at) })
}
