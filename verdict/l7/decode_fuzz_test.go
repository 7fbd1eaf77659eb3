package l7

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/qguard/qguard/internal/pktbuild"
	"github.com/qguard/qguard/verdict/packet"
)

// fuzzPatterns is the matcher FuzzDecode runs over payloads: a mix of
// case-sensitive and case-insensitive patterns.
var fuzzPatterns = func() *Patterns {
	m, err := CompilePatterns([]Pattern{
		{Bytes: []byte("GET /admin")}, {Bytes: []byte("\x00\x01secret")},
		{Bytes: []byte("User-Agent: evil"), Fold: true}, {Bytes: []byte("\x16\x03")},
	})
	if err != nil {
		panic(err)
	}
	return m
}()

// fuzzSeeds returns packets for the seed corpus: every decoder table entry
// plus packets carrying DNS, TLS and HTTP payloads.
func fuzzSeeds() map[string][]byte {
	seeds := pktbuild.Samples()
	seeds["ipv4-udp-dns"] = pktbuild.IPv4{Proto: packet.ProtoUDP}.Build(pktbuild.UDP(40000, 53, pktbuild.DNSQuery(1, "www.example.com", "a.example")))
	seeds["ipv6-tcp-dns"] = pktbuild.IPv6{Proto: packet.ProtoTCP}.Build(pktbuild.TCP(40000, 53, packet.TCPAck|packet.TCPPsh, nil, pktbuild.TCPDNS(pktbuild.DNSQuery(2, "example.org"))))
	seeds["ipv4-tcp-tls"] = pktbuild.IPv4{Proto: packet.ProtoTCP}.Build(pktbuild.TCP(40000, 443, packet.TCPAck|packet.TCPPsh, nil, pktbuild.ClientHello("sni.example", 0)))
	seeds["ipv6-tcp-tls-split"] = pktbuild.IPv6{Proto: packet.ProtoTCP}.Build(pktbuild.TCP(40000, 443, packet.TCPAck, nil, pktbuild.Records(pktbuild.Handshake(pktbuild.HelloBody(pktbuild.SNIExt("x.example"))), 20)))
	seeds["ipv4-tcp-http"] = pktbuild.IPv4{Proto: packet.ProtoTCP}.Build(pktbuild.TCP(40000, 80, packet.TCPAck|packet.TCPPsh, nil, []byte("GET /admin HTTP/1.1\r\nHost: www.example.com:8080\r\n\r\n")))
	seeds["ipv6-ext-many"] = pktbuild.IPv6{Proto: packet.ProtoTCP, Exts: []pktbuild.Ext{pktbuild.NewExt(packet.ProtoHopByHop, pktbuild.Opts6(1)), pktbuild.NewExt(packet.ProtoRouting, pktbuild.Opts6(1)), pktbuild.NewExt(packet.ProtoDstOpts, pktbuild.Opts6(2)), pktbuild.NewExt(packet.ProtoAH, make([]byte, 14))}}.Build(pktbuild.TCP(1, 2, packet.TCPSyn, nil, nil))
	seeds["ipv4-options"] = pktbuild.IPv4{Proto: packet.ProtoTCP, Opts: []byte{0x44, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0}}.Build(pktbuild.TCP(1, 2, packet.TCPSyn, nil, nil))
	seeds["ipv4-later-frag"] = pktbuild.IPv4{Proto: packet.ProtoUDP, FragOff: 1480}.Build([]byte("fragment data"))
	seeds["ipv6-later-frag"] = pktbuild.IPv6{Proto: packet.ProtoUDP, Exts: []pktbuild.Ext{pktbuild.NewExt(packet.ProtoFragment, pktbuild.Frag6(1448, false, 3))}}.Build([]byte("fragment data"))
	return seeds
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzDecode when
// QGUARD_WRITE_CORPUS=1; otherwise it checks that the corpus is there.
func TestWriteFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if os.Getenv("QGUARD_WRITE_CORPUS") != "1" {
		if ents, err := os.ReadDir(dir); err != nil || len(ents) < len(fuzzSeeds()) {
			t.Fatalf("seed corpus %s missing or short (%v): run with QGUARD_WRITE_CORPUS=1", dir, err)
		}
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range fuzzSeeds() {
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzDecode decodes arbitrary bytes as a packet and runs every extractor
// on the payload. Beyond not panicking it checks that slices stay inside
// the input and that names come out lowercase and bounded.
func FuzzDecode(f *testing.F) {
	for _, b := range fuzzSeeds() {
		f.Add(b)
	}
	var hb HelloBuffer
	f.Fuzz(func(t *testing.T, b []byte) {
		var p packet.Packet
		ok := packet.Decode(b, &p)
		if ok != (p.Invalid == packet.ReasonNone) {
			t.Fatalf("Decode = %v with reason %q", ok, p.Invalid)
		}
		if !ok {
			return
		}
		if p.L4Off > len(b) || p.L4Off < 20 || !inside(p.Payload, b) {
			t.Fatalf("L4Off %d or Payload outside the %d-byte input", p.L4Off, len(b))
		}
		if !p.Short && p.IPLen > len(b) {
			t.Fatalf("IPLen %d > %d bytes but not Short", p.IPLen, len(b))
		}
		var buf [MaxNameLen]byte
		checkName(t, "DNS", b, buf[:], func(d []byte) ([]byte, Status) { return DNSQueryName(p.Payload, p.Proto == packet.ProtoTCP, d) })
		checkName(t, "SNI", b, buf[:], func(d []byte) ([]byte, Status) { return TLSServerName(p.Payload, d) })
		checkName(t, "HTTP", b, buf[:], func(d []byte) ([]byte, Status) { return HTTPHost(p.Payload, d) })
		hb.Reset()
		for i := 0; i < len(p.Payload); i += 7 {
			hb.Add(p.TCPSeq+uint32(i), p.Payload[i:min(i+7, len(p.Payload))])
		}
		if name := hb.ServerName(); hb.Status() == Found {
			checkLower(t, "HelloBuffer", name)
		}
		if i := fuzzPatterns.Match(p.Payload); i >= fuzzPatterns.Len() {
			t.Fatalf("pattern index %d", i)
		}
	})
}

// inside reports whether s is empty or a subslice of b.
func inside(s, b []byte) bool {
	if len(s) == 0 {
		return true
	}
	sp, bp := uintptr(unsafe.Pointer(unsafe.SliceData(s))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return sp >= bp && sp+uintptr(len(s)) <= bp+uintptr(len(b))
}

func checkName(t *testing.T, what string, in, buf []byte, f func([]byte) ([]byte, Status)) {
	t.Helper()
	name, st := f(buf[:0])
	if st == Found {
		checkLower(t, what, name)
	} else if name != nil {
		t.Fatalf("%s: status %s with name %q", what, st, name)
	}
	if st == Unset || st >= numStatus {
		t.Fatalf("%s: status %d", what, st)
	}
}

func checkLower(t *testing.T, what string, name []byte) {
	t.Helper()
	if len(name) > MaxNameLen {
		t.Fatalf("%s: name of %d bytes", what, len(name))
	}
	for _, c := range name {
		if 'A' <= c && c <= 'Z' {
			t.Fatalf("%s: name %q not lowercase", what, name)
		}
	}
}
