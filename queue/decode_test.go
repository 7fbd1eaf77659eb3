package queue

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

func TestDecodePacketAllAttributes(t *testing.T) {
	payload := []byte{0x60, 1, 2, 3, 4, 5}
	var ts [16]byte
	be.PutUint64(ts[0:], 1700000000)
	be.PutUint64(ts[8:], 250000)
	hw := []byte{0, 6, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0, 0}
	ct := (&msg{}).attr(1, 1, 2, 3, 4).attr(ctaID|0x4000, 0, 0, 0x12, 0x34).b
	b := newMsg(msgPacket, 9).hdr(0xdeadbeef, 0x86dd, 1).
		u32(attrMark, 0x42).u32(attrIfIn, 3).u32(attrIfOut, 4).u32(attrIfPhysIn, 5).u32(attrIfPhysOut, 6).
		attr(attrTimestamp, ts[:]...).attr(attrHwAddr, hw...).
		attr(attrCT|0x8000, ct...).u32(attrCTInfo, 2).u32(attrCapLen, 1500).u32(attrSkbInfo, SkbCsumNotReady|SkbGSO).
		u32(attrUID, 1000).u32(attrGID, 100).attr(attrSecCtx, 's', 'y', 's').u32(attrPriority, 6).
		attr(99, 1, 2, 3). // unknown attribute: skipped
		attr(attrPayload, payload...).done()
	typ, body, rest, trunc, ok := nextMsg(b)
	if !ok || trunc || typ != msgPacket || len(rest) != 0 {
		t.Fatalf("nextMsg: typ %#x trunc %v ok %v rest %d", typ, trunc, ok, len(rest))
	}
	var p Packet
	if r := decodePacket(body, &p); r != decodeOK {
		t.Fatalf("decode: %d", r)
	}
	want := Packet{Queue: 9, ID: 0xdeadbeef, HwProto: 0x86dd, Hook: 1, Mark: 0x42, InIf: 3, OutIf: 4,
		PhysInIf: 5, PhysOutIf: 6, UID: 1000, GID: 100, CTState: 2, CTID: 0x1234,
		SkbInfo: SkbCsumNotReady | SkbGSO, Priority: 6, CapLen: 6, OrigLen: 1500, HwAddrLen: 6,
		HwAddr: [8]byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}}
	if !p.Timestamp.Equal(time.Unix(1700000000, 250000000)) {
		t.Errorf("timestamp %v", p.Timestamp)
	}
	if !bytes.Equal(p.Payload, payload) || string(p.SecCtx) != "sys" {
		t.Errorf("payload %x secctx %q", p.Payload, p.SecCtx)
	}
	allHas := AttrMark | AttrTimestamp | AttrInIf | AttrOutIf | AttrPhysInIf | AttrPhysOutIf | AttrHwAddr |
		AttrPayload | AttrCT | AttrCTInfo | AttrCapLen | AttrSkbInfo | AttrUID | AttrGID | AttrSecCtx | AttrPriority
	if p.Has != allHas {
		t.Errorf("Has %#x, want %#x", p.Has, allHas)
	}
	p.Timestamp, p.Payload, p.SecCtx, p.Has = time.Time{}, nil, nil, 0
	if !reflect.DeepEqual(p, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", p, want)
	}
}

func TestDecodePacketMalformed(t *testing.T) {
	good := pktMsg(1, 5, 20)
	cases := []struct {
		name string
		b    []byte
		want decodeResult
	}{
		{"no attributes", newMsg(msgPacket, 1).done(), decodeNoID},
		{"short nfgenmsg", good[:18], decodeNoID},
		{"short packet header", newMsg(msgPacket, 1).attr(attrPacketHdr, 0, 0, 0, 5).done(), decodeNoID},
		{"mark too short", newMsg(msgPacket, 1).hdr(5, 0x800, 0).attr(attrMark, 1).done(), decodeBad},
		{"timestamp too short", newMsg(msgPacket, 1).hdr(5, 0x800, 0).attr(attrTimestamp, 1, 2).done(), decodeBad},
		{"hwaddr too short", newMsg(msgPacket, 1).hdr(5, 0x800, 0).attr(attrHwAddr, 1, 2).done(), decodeBad},
		{"attribute length zero", append(newMsg(msgPacket, 1).hdr(5, 0x800, 0).done(), 0, 0, 1, 0), decodeBad},
		{"attribute beyond message", append(newMsg(msgPacket, 1).hdr(5, 0x800, 0).done(), 200, 0, 1, 0), decodeBad},
		{"trailing junk", append(newMsg(msgPacket, 1).hdr(5, 0x800, 0).done(), 1, 2), decodeBad},
		{"bad nested ct", newMsg(msgPacket, 1).hdr(5, 0x800, 0).attr(attrCT, 9, 0, 1, 0).done(), decodeBad},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Packet
			// nextMsg is bypassed: the length field may be stale on purpose.
			if r := decodePacket(c.b[16:], &p); r != c.want {
				t.Fatalf("got %d, want %d", r, c.want)
			}
			if c.want == decodeBad && p.ID != 5 {
				t.Fatalf("id %d, want 5 (needed for the default verdict)", p.ID)
			}
		})
	}
}

func TestNextMsg(t *testing.T) {
	a, b := pktMsg(1, 1, 3), pktMsg(1, 2, 8)
	two := append(append([]byte{}, a...), make([]byte, align4(len(a))-len(a))...)
	two = append(two, b...)
	_, body, rest, _, ok := nextMsg(two)
	var p Packet
	if !ok || decodePacket(body, &p) != decodeOK || p.ID != 1 || len(p.Payload) != 3 {
		t.Fatalf("first: ok %v id %d payload %d", ok, p.ID, len(p.Payload))
	}
	_, body, rest, _, ok = nextMsg(rest)
	p = Packet{}
	if !ok || decodePacket(body, &p) != decodeOK || p.ID != 2 || len(rest) != 0 {
		t.Fatalf("second: ok %v id %d rest %d", ok, p.ID, len(rest))
	}
	// A truncated receive: the header claims more than arrived.
	_, _, _, trunc, ok := nextMsg(b[:len(b)-4])
	if !ok || !trunc {
		t.Fatalf("truncated: ok %v trunc %v", ok, trunc)
	}
	for _, bad := range [][]byte{nil, b[:15], {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, _, _, _, ok := nextMsg(bad); ok {
			t.Fatalf("nextMsg(%x) ok", bad)
		}
	}
}

func TestNLError(t *testing.T) {
	body := make([]byte, 4+16)
	ne.PutUint32(body[0:], uint32(0xffffffff-16+1)) // -16 (EBUSY)
	ne.PutUint32(body[12:], 77)
	errno, seq, ok := nlError(body)
	if !ok || errno != -16 || seq != 77 {
		t.Fatalf("errno %d seq %d ok %v", errno, seq, ok)
	}
	if _, _, ok := nlError(body[:8]); ok {
		t.Fatal("short error accepted")
	}
}

func TestDecodeAllocs(t *testing.T) {
	b := pktMsg(3, 7, 64)
	var p Packet
	allocs := testing.AllocsPerRun(1000, func() {
		p.reset()
		_, body, _, _, _ := nextMsg(b)
		if decodePacket(body, &p) != decodeOK {
			t.Fatal("decode failed")
		}
	})
	if allocs != 0 {
		t.Fatalf("decode allocates %.1f per packet", allocs)
	}
}

func FuzzDecodePacket(f *testing.F) {
	f.Add(pktMsg(1, 2, 40))
	f.Add(newMsg(msgPacket, 1).hdr(5, 0x800, 0).attr(attrCT, 9, 0, 1, 0).done())
	f.Fuzz(func(t *testing.T, b []byte) {
		for rest := b; ; {
			_, body, r, _, ok := nextMsg(rest)
			if !ok {
				return
			}
			var p Packet
			decodePacket(body, &p)
			if len(p.Payload) > len(body) {
				t.Fatal("payload outside the message")
			}
			rest = r
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	m := pktMsg(3, 7, 64)
	var p Packet
	b.ReportAllocs()
	for b.Loop() {
		p.reset()
		_, body, _, _, _ := nextMsg(m)
		decodePacket(body, &p)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}
