package verdict

import (
	"encoding/binary"
	"strings"
)

// dnsName encodes a dotted name as labels ending with the root label.
func dnsName(name string) []byte {
	var b []byte
	if name != "" {
		for _, l := range strings.Split(name, ".") {
			b = append(b, byte(len(l)))
			b = append(b, l...)
		}
	}
	return append(b, 0)
}

// dnsQuery builds a DNS query message with one A/IN question per name.
func dnsQuery(id uint16, names ...string) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], 0x0100) // RD
	binary.BigEndian.PutUint16(b[4:], uint16(len(names)))
	for _, n := range names {
		b = append(b, dnsName(n)...)
		b = append(b, 0, 1, 0, 1)
	}
	return b
}

// tcpDNS prefixes msg with its two-byte length.
func tcpDNS(msg []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)
}

func u16(v int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }

// vec16 prefixes b with a two-byte length.
func vec16(b []byte) []byte { return append(u16(len(b)), b...) }

// tlsExt builds one extension.
func tlsExt(typ int, data []byte) []byte { return append(u16(typ), vec16(data)...) }

// sniExt builds a server_name extension holding one host_name.
func sniExt(host string) []byte {
	return tlsExt(0, vec16(append([]byte{0}, vec16([]byte(host))...)))
}

// helloBody builds a ClientHello body with the given extensions.
func helloBody(exts ...[]byte) []byte {
	b := []byte{3, 3}
	b = append(b, make([]byte, 32)...)                // random
	b = append(b, 32)                                 // session id
	b = append(b, make([]byte, 32)...)                //
	b = append(b, vec16([]byte{0x13, 1, 0x13, 2})...) // cipher suites
	b = append(b, 1, 0)                               // compression: null
	var e []byte
	for _, x := range exts {
		e = append(e, x...)
	}
	return append(b, vec16(e)...)
}

// handshake wraps a ClientHello body in a handshake header.
func handshake(body []byte) []byte {
	n := len(body)
	return append([]byte{1, byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

// records cuts a handshake message into TLS records of at most max bytes.
func records(hs []byte, max int) []byte {
	var b []byte
	for len(hs) > 0 {
		c := min(max, len(hs))
		b = append(b, 22, 3, 1)
		b = append(b, u16(c)...)
		b = append(b, hs[:c]...)
		hs = hs[c:]
	}
	return b
}

// clientHello builds one record holding a ClientHello for host, padded with
// a padding extension (RFC 7685) of pad bytes so tests can make it span
// segments as post-quantum key shares do.
func clientHello(host string, pad int) []byte {
	exts := [][]byte{tlsExt(10, vec16([]byte{0, 29})), sniExt(host)}
	if pad > 0 {
		exts = append(exts, tlsExt(21, make([]byte, pad)))
	}
	return records(handshake(helloBody(exts...)), 1<<14)
}
