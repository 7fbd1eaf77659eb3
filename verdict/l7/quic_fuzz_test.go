package l7

import "testing"

// FuzzQUIC seals arbitrary frames into one or two client Initials, so the
// fuzzer reaches the frame walk and the CRYPTO reassembly behind the AEAD,
// and feeds the raw input as a datagram too. Names stay lowercase and
// bounded, and the order the packets arrive in never changes which name
// comes out.
func FuzzQUIC(f *testing.F) {
	hello := quicTestHello("Fuzz.Example", 1500)
	f.Add(append(cryptoFrame(700, hello[700:]), cryptoFrame(0, hello[:700])...), uint16(len(hello)/2+8), false)
	f.Add(append([]byte{quicFrameAck, 3, 0, 1, 0, 0, 0, quicFramePing}, cryptoFrame(0, hello)...), uint16(0), true)
	f.Add(append(cryptoFrame(0, hello[:100]), cryptoFrame(50, hello[50:])...), uint16(9), false)
	f.Fuzz(func(t *testing.T, frames []byte, cut uint16, v2 bool) {
		q := NewQUICHello()
		checkQUIC(t, q, frames)
		version := uint32(quicVersion1)
		if v2 {
			version = quicVersion2
		}
		c := int(cut) % (len(frames) + 1)
		dcid := []byte{1, 2, 3, 4, 5, 6, 7, 8}
		a := sealQUIC(t, qpkt{version: version, dcid: dcid, pn: 0, frames: frames[:c], size: 1200})
		b := sealQUIC(t, qpkt{version: version, dcid: dcid, pn: 1, frames: frames[c:], size: 1200})
		var names [3]string
		var sts [3]Status
		for i, seq := range [][][]byte{{a, b}, {b, a}, {append(a[:len(a):len(a)], b...)}} {
			q.Reset()
			for _, d := range seq {
				sts[i] = checkQUIC(t, q, d)
			}
			names[i] = string(q.ServerName())
		}
		if sts[0] == Found && sts[1] == Found && names[0] != names[1] {
			t.Fatalf("order changes the name: %q, %q", names[0], names[1])
		}
		if sts[0] == Found && sts[2] == Found && names[0] != names[2] {
			t.Fatalf("coalescing changes the name: %q, %q", names[0], names[2])
		}
	})
}

func checkQUIC(t *testing.T, q *QUICHello, d []byte) Status {
	name, st := q.Feed(d)
	if st >= numStatus || st == Unset {
		t.Fatalf("status %d", st)
	}
	if st == Found {
		if len(name) == 0 || len(name) > MaxNameLen {
			t.Fatalf("name of %d bytes", len(name))
		}
		checkLower(t, "QUIC", name)
	} else if name != nil {
		t.Fatalf("%s with name %q", st, name)
	}
	return st
}
