package l7

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/qguard/qguard/internal/pktbuild"
	"github.com/qguard/qguard/internal/testutil"
)

var rfcDCID = []byte{0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08}

// TestQUICInitialKeys checks key derivation against RFC 9001 A.1 and
// RFC 9369 A.1, and against crypto/hkdf for other connection IDs.
func TestQUICInitialKeys(t *testing.T) {
	kdf := newQUICKDF()
	for _, v := range []struct {
		version     uint32
		key, iv, hp string
	}{
		{quicVersion1, "1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c", "9f50449e04a0e810283a1e9933adedd2"},
		{quicVersion2, "8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f", "45b95e15235d6f45a6b19cbcb0294ba9"},
	} {
		var key, hp [quicKeyLen]byte
		var iv [quicIVLen]byte
		kdf.initialKeys(v.version, rfcDCID, &key, &iv, &hp)
		if fmt.Sprintf("%x %x %x", key, iv, hp) != v.key+" "+v.iv+" "+v.hp {
			t.Errorf("version %#x: key %x iv %x hp %x; want %s %s %s", v.version, key, iv, hp, v.key, v.iv, v.hp)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 50; i++ {
		dcid := make([]byte, r.IntN(21))
		for j := range dcid {
			dcid[j] = byte(r.Uint32())
		}
		for _, version := range []uint32{quicVersion1, quicVersion2} {
			var key, hp [quicKeyLen]byte
			var iv [quicIVLen]byte
			kdf.initialKeys(version, dcid, &key, &iv, &hp)
			salt, l := quicSaltV1[:], quicLabelsV1
			if version == quicVersion2 {
				salt, l = quicSaltV2[:], quicLabelsV2
			}
			prk, _ := hkdf.Extract(sha256.New, dcid, salt)
			secret := stdExpandLabel(t, prk, "client in", 32)
			want := fmt.Sprintf("%x %x %x", stdExpandLabel(t, secret, l.key, 16), stdExpandLabel(t, secret, l.iv, 12), stdExpandLabel(t, secret, l.hp, 16))
			if got := fmt.Sprintf("%x %x %x", key, iv, hp); got != want {
				t.Fatalf("dcid %x version %#x: %s, crypto/hkdf %s", dcid, version, got, want)
			}
		}
	}
}

func stdExpandLabel(t *testing.T, secret []byte, label string, n int) []byte {
	info := []byte{byte(n >> 8), byte(n), byte(6 + len(label))}
	info = append(append(info, "tls13 "+label...), 0)
	b, err := hkdf.Expand(sha256.New, secret, string(info), n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestQUICRFCVectors reads the client Initials of RFC 9001 A.2 and RFC
// 9369 A.2; any changed bit or cut must lose the name.
func TestQUICRFCVectors(t *testing.T) {
	for _, file := range []string{"rfc9001-a2-client-initial.hex", "rfc9369-a2-client-initial.hex"} {
		pkt := testutil.ReadHex(t, "testdata/quic/"+file)
		if len(pkt) != 1200 {
			t.Fatalf("%s: %d bytes", file, len(pkt))
		}
		q := NewQUICHello()
		if name, st := q.Feed(pkt); st != Found || string(name) != "example.com" {
			t.Fatalf("%s: %q %s", file, name, st)
		}
		bad := make([]byte, len(pkt))
		for bit := 0; bit < 8*len(pkt); bit++ {
			copy(bad, pkt)
			bad[bit/8] ^= 1 << (bit % 8)
			q.Reset()
			if name, st := q.Feed(bad); st == Found {
				t.Fatalf("%s: bit %d flipped: still %q", file, bit, name)
			}
		}
		for n := 0; n < len(pkt); n++ {
			q.Reset()
			if name, st := q.Feed(pkt[:n]); st == Found || st == Malformed {
				t.Fatalf("%s: cut at %d: %q %s", file, n, name, st)
			}
		}
	}
}

// quicConn builds the Initials of one client connection.
type quicConn struct {
	t       testing.TB
	version uint32
	dcid    []byte
	pn      uint64
}

func (c *quicConn) packet(frames []byte, size int) []byte {
	p := sealQUIC(c.t, qpkt{version: c.version, dcid: c.dcid, scid: []byte{1, 2, 3, 4}, pn: c.pn, frames: frames, size: size})
	c.pn++
	return p
}

// hello returns a ClientHello handshake message for host, padded to at
// least size bytes.
func quicTestHello(host string, size int) []byte {
	exts := [][]byte{pktbuild.TLSExt(10, pktbuild.Vec16([]byte{0, 29})), pktbuild.SNIExt(host)}
	if pad := size - len(pktbuild.Handshake(pktbuild.HelloBody(exts...))) - 4; pad > 0 {
		exts = append(exts, pktbuild.TLSExt(21, make([]byte, pad)))
	}
	return pktbuild.Handshake(pktbuild.HelloBody(exts...))
}

// splitCrypto cuts msg into packets of CRYPTO frames of at most n bytes.
func (c *quicConn) splitCrypto(msg []byte, n int) [][]byte {
	var pkts [][]byte
	for off := 0; off < len(msg); off += n {
		end := min(off+n, len(msg))
		pkts = append(pkts, c.packet(cryptoFrame(off, msg[off:end]), 1200))
	}
	return pkts
}

func permutations(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

// TestQUICReassembly feeds a ClientHello split over several Initials in
// every order, for both versions: the name appears exactly when the last
// piece arrives.
func TestQUICReassembly(t *testing.T) {
	for _, version := range []uint32{quicVersion1, quicVersion2} {
		c := &quicConn{t: t, version: version, dcid: []byte{9, 8, 7, 6, 5, 4, 3, 2}}
		hello := quicTestHello("Split.Example.ORG", 3500)
		pkts := c.splitCrypto(hello, 1000)
		if len(pkts) != 4 {
			t.Fatalf("%d packets", len(pkts))
		}
		q := NewQUICHello()
		for _, order := range permutations(len(pkts)) {
			q.Reset()
			for i, j := range order {
				name, st := q.Feed(pkts[j])
				want := NeedMore
				if i == len(order)-1 {
					want = Found
				}
				if st != want || want == Found && string(name) != "split.example.org" {
					t.Fatalf("version %#x order %v step %d: %q %s", version, order, i, name, st)
				}
			}
			// Retransmissions of the same bytes change nothing.
			if name, st := q.Feed(pkts[order[0]]); st != Found || string(name) != "split.example.org" {
				t.Fatalf("retransmission: %q %s", name, st)
			}
		}
	}
}

// TestQUICCoalescedAndFrames covers coalesced packets, frames in reverse
// order inside one packet, overlapping frames and the other frame types
// allowed in Initials.
func TestQUICCoalescedAndFrames(t *testing.T) {
	c := &quicConn{t: t, version: quicVersion1, dcid: []byte{1, 1, 2, 3, 5, 8, 13, 21}}
	hello := quicTestHello("c.example", 1500)
	ack := []byte{quicFrameAck, 5, 0, 1, 0, 1, 2}                // largest 5, delay 0, 1 range: first 0, gap 1 len 2
	ackECN := []byte{quicFrameAckECN, 0, 0, 0, 0, 7, 8, 0x40, 9} // with ECN counts
	closeFrame := []byte{quicFrameClose, 0, 0, 3, 'b', 'y', 'e'}
	reverse := append(append(append(cryptoFrame(900, hello[900:]), quicFramePing), ack...), cryptoFrame(0, hello[:950])...)
	cases := []struct {
		name   string
		dgrams [][]byte
		want   Status
	}{
		{"reverse and overlapping in one packet", [][]byte{c.packet(append(reverse, ackECN...), 1200)}, Found},
		{"coalesced", [][]byte{append(c.packet(cryptoFrame(0, hello[:700]), 0), c.packet(cryptoFrame(700, hello[700:]), 1200)...)}, Found},
		{"coalesced with a Handshake packet after", [][]byte{append(c.packet(cryptoFrame(0, hello), 0), 0xe0, 0, 0, 0, 1, 0, 0, 0x40, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)}, Found},
		{"coalesced with another connection's hello", [][]byte{append(c.packet(cryptoFrame(0, quicTestHello("x.other", 0)), 0),
			(&quicConn{t: t, version: quicVersion1, dcid: []byte{7, 7, 7, 7, 7, 7, 7, 7}}).packet(cryptoFrame(0, hello), 1200)...)}, Found},
		{"close after hello", [][]byte{c.packet(append(cryptoFrame(0, hello), closeFrame...), 1200)}, Found},
		{"conflicting overlap", [][]byte{c.packet(cryptoFrame(0, hello[:1000]), 1200), c.packet(cryptoFrame(500, append([]byte{hello[500] ^ 1}, hello[501:]...)), 1200)}, Malformed},
		{"stream frame", [][]byte{c.packet(append(cryptoFrame(0, hello), 0x08, 0, 1, 'x'), 1200)}, Malformed},
		{"truncated crypto frame", [][]byte{c.packet(cryptoFrame(0, hello)[:100], 0)}, Malformed},
		{"truncated ack", [][]byte{c.packet(append(cryptoFrame(0, hello), quicFrameAck, 5, 0, 0x3f), 0)}, Malformed},
		{"crypto past the buffer", [][]byte{c.packet(cryptoFrame(QUICCryptoBufferSize-10, make([]byte, 20)), 1200)}, TooLarge},
		{"crypto at a huge offset", [][]byte{c.packet(cryptoFrame(1<<61, []byte{1}), 1200)}, TooLarge},
		{"crypto past 2^62", [][]byte{c.packet(append([]byte{quicFrameCrypto}, append(quicVarintBytes(quicMaxVarint), 1, 1)...), 1200)}, Malformed},
		{"hello longer than the buffer", [][]byte{c.packet(cryptoFrame(0, []byte{1, 0, 0x40, 0, 3, 3}), 1200)}, TooLarge},
		{"not a client hello", [][]byte{c.packet(cryptoFrame(0, []byte{2, 0, 0, 4, 3, 3, 0, 0}), 1200)}, Malformed},
		{"no sni", [][]byte{c.packet(cryptoFrame(0, pktbuild.Handshake(pktbuild.HelloBody(pktbuild.TLSExt(10, pktbuild.Vec16([]byte{0, 29}))))), 1200)}, Absent},
		{"only padding", [][]byte{c.packet(nil, 1200)}, NeedMore},
		{"ping only", [][]byte{c.packet([]byte{quicFramePing}, 0)}, NeedMore},
	}
	for _, tc := range cases {
		q := NewQUICHello()
		var name []byte
		var st Status
		for _, d := range tc.dgrams {
			name, st = q.Feed(d)
		}
		if st != tc.want || st == Found && string(name) != "c.example" {
			t.Errorf("%s: %q %s, want %s", tc.name, name, st, tc.want)
		}
	}
}

// TestQUICConnections checks which packets count: forged ones are
// ignored, a client that switched DCID keeps its keys, a second connection
// on the same flow is judged on its own, and the bounds hold.
func TestQUICConnections(t *testing.T) {
	dcid := []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11}
	hello := quicTestHello("first.example", 0)
	q := NewQUICHello()

	forged := sealQUIC(t, qpkt{dcid: dcid, keyDCID: []byte{1, 2, 3, 4, 5, 6, 7, 8}, frames: cryptoFrame(0, quicTestHello("decoy.example", 0)), size: 1200})
	if _, st := q.Feed(forged); st != NeedMore {
		t.Fatalf("forged first: %s", st)
	}
	if name, st := q.Feed(sealQUIC(t, qpkt{dcid: dcid, frames: cryptoFrame(0, hello), size: 1200})); st != Found || string(name) != "first.example" {
		t.Fatalf("after forged: %q %s", name, st)
	}
	// The client now uses the server's connection ID, with the keys of the first.
	if name, st := q.Feed(sealQUIC(t, qpkt{dcid: []byte{7, 7}, keyDCID: dcid, pn: 1, frames: []byte{quicFrameAck, 0, 0, 0, 0}, size: 1200})); st != Found || string(name) != "first.example" {
		t.Fatalf("switched DCID: %q %s", name, st)
	}
	if name, st := q.Feed([]byte{0x40, 7, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}); st != Found || string(name) != "first.example" {
		t.Fatalf("short header: %q %s", name, st)
	}
	// Compatible version negotiation: the connection goes on in v2 with
	// keys from the original DCID; its retransmitted CRYPTO data is checked.
	if name, st := q.Feed(sealQUIC(t, qpkt{version: quicVersion2, dcid: []byte{7, 7}, keyDCID: dcid, pn: 2, frames: []byte{quicFrameAck, 0, 0, 0, 0}, size: 1200})); st != Found || string(name) != "first.example" {
		t.Fatalf("after version negotiation: %q %s", name, st)
	}
	vn := NewQUICHello()
	vn.Feed(sealQUIC(t, qpkt{dcid: dcid, frames: cryptoFrame(0, hello), size: 1200}))
	if _, st := vn.Feed(sealQUIC(t, qpkt{version: quicVersion2, dcid: []byte{7, 7}, keyDCID: dcid, pn: 1, frames: cryptoFrame(0, quicTestHello("other.example", 0)), size: 1200})); st != Malformed {
		t.Fatalf("contradicting hello after version negotiation: %s", st)
	}
	// A second connection on the same 5-tuple (or the same after a Retry).
	second := []byte{0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22}
	if name, st := q.Feed(sealQUIC(t, qpkt{version: quicVersion2, dcid: second, frames: cryptoFrame(0, quicTestHello("second.example", 0)), size: 1200})); st != Found || string(name) != "second.example" {
		t.Fatalf("second connection: %q %s", name, st)
	}
	// Ever new connection IDs: after quicMaxKeys derivations, TooLarge.
	var st Status
	for i := 0; i < quicMaxKeys; i++ {
		_, st = q.Feed(sealQUIC(t, qpkt{dcid: []byte{byte(i), 1, 2, 3, 4, 5, 6, 7}, frames: cryptoFrame(0, hello[:10]), size: 1200}))
	}
	if st != TooLarge {
		t.Fatalf("after %d connections: %s", quicMaxKeys+2, st)
	}

	// Too many Initials without a complete hello.
	q.Reset()
	c := &quicConn{t: t, version: quicVersion1, dcid: dcid}
	for i := 0; i < QUICMaxInitials; i++ {
		if _, st = q.Feed(c.packet([]byte{quicFramePing}, 1200)); st != NeedMore {
			t.Fatalf("ping %d: %s", i, st)
		}
	}
	if _, st = q.Feed(c.packet(cryptoFrame(0, hello), 1200)); st != TooLarge {
		t.Fatalf("after %d Initials: %s", QUICMaxInitials, st)
	}

	// A packet too large to open, and reserved bits.
	q.Reset()
	if _, st = q.Feed(sealQUIC(t, qpkt{dcid: dcid, frames: cryptoFrame(0, hello), size: quicMaxPacket + 1})); st != TooLarge {
		t.Fatalf("large packet: %s", st)
	}
	q.Reset()
	if _, st = q.Feed(sealQUIC(t, qpkt{dcid: dcid, frames: cryptoFrame(0, hello), size: 1200, reserved: 0x08})); st != Malformed {
		t.Fatalf("reserved bits: %s", st)
	}
	// Malformed is settled: a later valid packet of the connection does not undo it.
	if _, st = q.Feed(sealQUIC(t, qpkt{dcid: dcid, pn: 1, frames: cryptoFrame(0, hello), size: 1200})); st != Malformed {
		t.Fatalf("after malformed: %s", st)
	}
}

// TestQUICRetriedHello checks a second ClientHello after a
// HelloRetryRequest: the same name keeps the answer, another is malformed.
func TestQUICRetriedHello(t *testing.T) {
	for _, tc := range []struct {
		second string
		want   Status
	}{{"same.example", Found}, {"other.example", Malformed}} {
		c := &quicConn{t: t, version: quicVersion1, dcid: []byte{5, 5, 5, 5, 5, 5, 5, 5}}
		first := quicTestHello("same.example", 0)
		q := NewQUICHello()
		if _, st := q.Feed(c.packet(cryptoFrame(0, first), 1200)); st != Found {
			t.Fatalf("first hello: %s", st)
		}
		if name, st := q.Feed(c.packet(cryptoFrame(len(first), quicTestHello(tc.second, 0)), 1200)); st != tc.want {
			t.Errorf("second hello for %s: %q %s, want %s", tc.second, name, st, tc.want)
		}
	}
}

func TestQUICNotQUIC(t *testing.T) {
	other := make([]byte, 1200)
	copy(other, []byte{0xc0, 0xff, 0x00, 0x00, 0x1d, 8}) // draft-29
	vn := make([]byte, 1200)
	copy(vn, []byte{0x80, 0, 0, 0, 0, 8})
	handshakePkt := append([]byte{0xe0, 0, 0, 0, 1, 0, 0, 0x40, 20}, make([]byte, 1200)...)
	for _, tc := range []struct {
		name string
		d    []byte
		want Status
	}{
		{"empty", nil, NotProtocol},
		{"dns", pktbuild.DNSQuery(1, "example.com"), NotProtocol},
		{"short header", append([]byte{0x40}, make([]byte, 1200)...), NotProtocol},
		{"other version", other, Malformed},
		{"other version, small", other[:100], NotProtocol},
		{"version negotiation", vn, NotProtocol},
		{"handshake packet alone", handshakePkt, NotProtocol},
		{"initial header, junk", append([]byte{0xc0, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x44, 0x9e}, make([]byte, 1182)...), NeedMore},
		{"initial header, dcid too long", append([]byte{0xc0, 0, 0, 0, 1, 21}, make([]byte, 1194)...), NeedMore},
	} {
		q := NewQUICHello()
		if _, st := q.Feed(tc.d); st != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, st, tc.want)
		}
	}
}

func TestQUICPacketNumber(t *testing.T) {
	for _, tc := range []struct {
		largest int64
		trunc   uint64
		n       int
		want    uint64
	}{
		{-1, 0, 1, 0}, {-1, 2, 2, 2}, {0xa82f30ea, 0x9b32, 2, 0xa82f9b32}, // RFC 9000 A.3
		{254, 1, 1, 257}, {300, 0xff, 1, 255}, {1 << 20, 0, 4, 0},
	} {
		if got := quicPacketNumber(tc.largest, tc.trunc, tc.n); got != tc.want {
			t.Errorf("largest %d trunc %#x len %d: %#x, want %#x", tc.largest, tc.trunc, tc.n, got, tc.want)
		}
	}
}

// TestQUICStreamWrite compares cryptoStream with a byte map for random
// overlapping writes.
func TestQUICStreamWrite(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	src := make([]byte, 2000)
	for i := range src {
		src[i] = byte(r.Uint32())
	}
	var s cryptoStream
	for round := 0; round < 200; round++ {
		s.reset()
		held := make([]bool, len(src))
		for w := 0; w < 20; w++ {
			off := r.IntN(len(src))
			n := r.IntN(min(300, len(src)-off) + 1)
			data := append([]byte(nil), src[off:off+n]...)
			conflict := false
			if i := r.IntN(n + 1); r.IntN(10) == 0 && i < n && held[off+i] {
				data[i] ^= 0x55
				conflict = true
			}
			if ok := s.write(off, data); ok != !conflict {
				t.Fatalf("round %d write %d at %d: ok %v, conflict %v", round, n, off, ok, conflict)
			}
			if conflict {
				break
			}
			for i := off; i < off+n; i++ {
				held[i] = true
			}
			prefix := 0
			for prefix < len(held) && held[prefix] {
				prefix++
			}
			if s.prefix != prefix {
				t.Fatalf("round %d: prefix %d, want %d", round, s.prefix, prefix)
			}
		}
		if !bytes.Equal(s.buf[:s.prefix], src[:s.prefix]) {
			t.Fatalf("round %d: prefix bytes differ", round)
		}
	}
}

// helloInitials is a ClientHello for name with pad bytes of padding, cut
// into the Initials (1100 bytes of CRYPTO each) of one version 1 connection.
func helloInitials(tb testing.TB, name string, pad int) [][]byte {
	c := &quicConn{t: tb, version: quicVersion1, dcid: []byte{4, 3, 2, 1, 4, 3, 2, 1}}
	return c.splitCrypto(quicTestHello(name, pad), 1100)
}

// TestQUICAllocs: after a connection's first Initial, Feed allocates
// nothing; the first Initial allocates only the connection's AES/GCM
// states.
func TestQUICAllocs(t *testing.T) {
	pkts := helloInitials(t, "alloc.example", 2500)
	q := NewQUICHello()
	later := func() {
		q.initials = 0 // stay under QUICMaxInitials: each run is one more retransmission
		for _, p := range pkts {
			if _, st := q.Feed(p); st != Found && st != NeedMore {
				t.Fatalf("status %s", st)
			}
		}
	}
	later()
	if q.Status() != Found {
		t.Fatalf("status %s", q.Status())
	}
	if n := testing.AllocsPerRun(100, later); n != 0 {
		t.Errorf("later Initials of a connection: %v allocs", n)
	}
	dns := pktbuild.DNSQuery(1, "example.com")
	if n := testing.AllocsPerRun(100, func() { q.Feed(dns) }); n != 0 {
		t.Errorf("not QUIC: %v allocs", n)
	}
	first := testing.AllocsPerRun(100, func() { q.Reset(); q.Feed(pkts[0]) })
	t.Logf("first Initial of a connection: %v allocs (AES and GCM states)", first)
	if first > 6 {
		t.Errorf("first Initial of a connection: %v allocs", first)
	}
}

func BenchmarkQUICInitial(b *testing.B) {
	pkts := helloInitials(b, "bench.example", 1800)
	q := NewQUICHello()
	b.Run("later", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(pkts[0])))
		for i := 0; b.Loop(); i++ {
			q.initials = 0 // measure opening, not the QUICMaxInitials cut-off
			if _, st := q.Feed(pkts[i%len(pkts)]); st != Found && st != NeedMore {
				b.Fatal(st)
			}
		}
	})
	b.Run("new-connection", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(pkts[0])))
		for b.Loop() {
			q.Reset()
			if _, st := q.Feed(pkts[0]); st != NeedMore {
				b.Fatal(st)
			}
		}
	})
	dns := pktbuild.DNSQuery(1, "example.com")
	b.Run("not-quic", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			q.Feed(dns)
		}
	})
}

// TestQUICPacketNumberDesync: packets qguard opened but the server never
// got (lost after the firewall, or dropped by the server) must not make
// qguard expand a later truncated packet number differently from the
// server and miss the packet the server opens.
func TestQUICPacketNumberDesync(t *testing.T) {
	dcid := []byte{3, 1, 4, 1, 5, 9, 2, 6}
	hello := quicTestHello("desync.blocked.test", 0)
	pkt := func(pn uint64, pnLen int, frames []byte) []byte {
		return sealQUIC(t, qpkt{dcid: dcid, pn: pn, pnLen: pnLen, frames: frames, size: 1200})
	}
	for _, tc := range []struct {
		name  string
		seen  []uint64 // opened by qguard only (4-byte packet numbers)
		pn    uint64   // the hello's, sent in one byte
		known []uint64 // opened by both before it
	}{
		{"server saw nothing", []uint64{100000}, 5, nil},
		{"server saw an older one", []uint64{100000}, 50001, []uint64{50000}},
	} {
		q := NewQUICHello()
		for _, pn := range tc.seen {
			q.Feed(pkt(pn, 4, []byte{quicFramePing}))
		}
		for _, pn := range tc.known {
			q.Feed(pkt(pn, 4, []byte{quicFramePing}))
		}
		if name, st := q.Feed(pkt(tc.pn, 1, cryptoFrame(0, hello))); st != Found || string(name) != "desync.blocked.test" {
			t.Errorf("%s: %q %s", tc.name, name, st)
		}
	}
	// Packet numbers spread so that every failing packet costs retries:
	// the budget ends in TooLarge, not in ignoring packets.
	q := NewQUICHello()
	for i := uint64(0); i < 20; i++ {
		q.Feed(pkt(i*1000, 4, []byte{quicFramePing}))
	}
	forged := pkt(7, 1, []byte{quicFramePing})
	forged[len(forged)-1] ^= 1 // header protection right, tag wrong: every candidate is tried
	var st Status
	for i := 0; i < 10 && st != TooLarge; i++ {
		_, st = q.Feed(forged)
	}
	if st != TooLarge {
		t.Errorf("after forged packets with spread packet numbers: %s", st)
	}
	// A regular connection's failing packets cost no retries.
	q.Reset()
	c := &quicConn{t: t, version: quicVersion1, dcid: dcid}
	for i := 0; i < 3; i++ {
		q.Feed(c.packet([]byte{quicFramePing}, 1200))
	}
	for i := 0; i < 100; i++ {
		q.Feed(forged)
	}
	if q.retries != 0 || q.Status() != NeedMore {
		t.Errorf("forged packets on a regular connection: %d retries, %s", q.retries, q.Status())
	}
}

// TestQUICSwitchLosesPieces: an Initial of another connection while a
// hello is half read must not make the rest of that hello look new.
func TestQUICSwitchLosesPieces(t *testing.T) {
	x := &quicConn{t: t, version: quicVersion1, dcid: []byte{1, 1, 1, 1, 1, 1, 1, 1}}
	y := &quicConn{t: t, version: quicVersion1, dcid: []byte{2, 2, 2, 2, 2, 2, 2, 2}}
	hello := quicTestHello("pieces.blocked.test", 1500)
	px := x.splitCrypto(hello, 800)
	q := NewQUICHello()
	if _, st := q.Feed(px[0]); st != NeedMore {
		t.Fatalf("first piece: %s", st)
	}
	if _, st := q.Feed(y.packet([]byte{quicFramePing}, 1200)); st != TooLarge {
		t.Fatalf("other connection while a hello is half read: %s", st)
	}
	if _, st := q.Feed(px[1]); st != TooLarge {
		t.Fatalf("the rest of the hello: %s", st)
	}
	// A complete hello may be left for another connection.
	q.Reset()
	for _, p := range px {
		q.Feed(p)
	}
	if name, st := q.Feed(y.packet(cryptoFrame(0, quicTestHello("y.example", 0)), 1200)); st != Found || string(name) != "y.example" {
		t.Fatalf("after a complete hello: %q %s", name, st)
	}
}
