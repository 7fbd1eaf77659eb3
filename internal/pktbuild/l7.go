package pktbuild

import (
	"encoding/binary"
	"strings"
)

// DNSName encodes a dotted name as labels ending with the root label.
func DNSName(name string) []byte {
	var b []byte
	if name != "" {
		for _, l := range strings.Split(name, ".") {
			b = append(b, byte(len(l)))
			b = append(b, l...)
		}
	}
	return append(b, 0)
}

// DNSQuery builds a DNS query message with one A/IN question per name.
func DNSQuery(id uint16, names ...string) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], 0x0100) // RD
	binary.BigEndian.PutUint16(b[4:], uint16(len(names)))
	for _, n := range names {
		b = append(b, DNSName(n)...)
		b = append(b, 0, 1, 0, 1)
	}
	return b
}

// TCPDNS prefixes msg with its two-byte length.
func TCPDNS(msg []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)
}

// U16 returns v as two big-endian bytes.
func U16(v int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }

// Vec16 prefixes b with a two-byte length.
func Vec16(b []byte) []byte { return append(U16(len(b)), b...) }

// TLSExt builds one TLS extension.
func TLSExt(typ int, data []byte) []byte { return append(U16(typ), Vec16(data)...) }

// SNIExt builds a server_name extension holding one host_name.
func SNIExt(host string) []byte {
	return TLSExt(0, Vec16(append([]byte{0}, Vec16([]byte(host))...)))
}

// HelloBody builds a ClientHello body with the given extensions.
func HelloBody(exts ...[]byte) []byte {
	b := []byte{3, 3}
	b = append(b, make([]byte, 32)...)                // random
	b = append(b, 32)                                 // session id
	b = append(b, make([]byte, 32)...)                //
	b = append(b, Vec16([]byte{0x13, 1, 0x13, 2})...) // cipher suites
	b = append(b, 1, 0)                               // compression: null
	var e []byte
	for _, x := range exts {
		e = append(e, x...)
	}
	return append(b, Vec16(e)...)
}

// Handshake wraps a ClientHello body in a Handshake header.
func Handshake(body []byte) []byte {
	n := len(body)
	return append([]byte{1, byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

// Records cuts a Handshake message into TLS Records of at most max bytes.
func Records(hs []byte, max int) []byte {
	var b []byte
	for len(hs) > 0 {
		c := min(max, len(hs))
		b = append(b, 22, 3, 1)
		b = append(b, U16(c)...)
		b = append(b, hs[:c]...)
		hs = hs[c:]
	}
	return b
}

// ClientHello builds one record holding a ClientHello for host, padded with
// a padding extension (RFC 7685) of pad bytes so tests can make it span
// segments as post-quantum key shares do.
func ClientHello(host string, pad int) []byte {
	exts := [][]byte{TLSExt(10, Vec16([]byte{0, 29})), SNIExt(host)}
	if pad > 0 {
		exts = append(exts, TLSExt(21, make([]byte, pad)))
	}
	return Records(Handshake(HelloBody(exts...)), 1<<14)
}
