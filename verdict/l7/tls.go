package l7

import "encoding/binary"

// A TLS ClientHello travels in handshake records (RFC 8446 5.1, 4.1.2):
//
//	record:     type(1)=22 | legacy_version(2)=0x03xx | length(2) | fragment
//	handshake:  msg_type(1)=1 | length(3) | ClientHello
//	ClientHello:
//	    legacy_version(2) | random(32)
//	    session_id      <0..32>          1-byte length
//	    cipher_suites   <2..2^16-2>      2-byte length
//	    compression     <1..2^8-1>       1-byte length
//	    extensions      <0..2^16-1>      2-byte length (absent before TLS 1.2 extensions)
//	extension:  type(2) | length(2) | data
//	server_name (type 0, RFC 6066 3):
//	    ServerNameList length(2) | name_type(1)=0 host_name | HostName length(2) | name
//
// A large ClientHello (post-quantum key shares make it ~1.8 KB) spans
// several TCP segments, and a sender may also split the handshake message
// over several records; HelloBuffer handles both.
const (
	tlsRecordHeaderLen    = 5
	tlsHandshakeHeaderLen = 4
	tlsMaxRecord          = 1<<14 + 256 // RFC 8446 5.1 plaintext limit, with slack for old stacks
	tlsContentHandshake   = 22
	tlsClientHello        = 1
	tlsExtServerName      = 0
)

// TLSServerName returns the server name of the TLS ClientHello at the start
// of payload, lowercased into dst (capacity MaxNameLen). NeedMore means
// the ClientHello continues in later segments or records: feed them to a
// HelloBuffer. It never allocates.
func TLSServerName(payload, dst []byte) ([]byte, Status) {
	st := checkRecordHeader(payload)
	if st != Found {
		return nil, st
	}
	rlen := int(binary.BigEndian.Uint16(payload[3:5]))
	body := payload[tlsRecordHeaderLen:]
	if len(body) < tlsHandshakeHeaderLen {
		return nil, NeedMore
	}
	if body[0] != tlsClientHello {
		return nil, NotProtocol
	}
	hlen := int(body[1])<<16 | int(body[2])<<8 | int(body[3])
	if tlsHandshakeHeaderLen+hlen > rlen || len(body) < tlsHandshakeHeaderLen+hlen {
		return nil, NeedMore // spans records or segments
	}
	return clientHelloServerName(body[tlsHandshakeHeaderLen:tlsHandshakeHeaderLen+hlen], dst)
}

// checkRecordHeader checks that b starts with a TLS handshake record header.
func checkRecordHeader(b []byte) Status {
	if len(b) < tlsRecordHeaderLen {
		if len(b) > 0 && b[0] != tlsContentHandshake || len(b) > 1 && b[1] != 3 {
			return NotProtocol
		}
		return NeedMore
	}
	if b[0] != tlsContentHandshake || b[1] != 3 {
		return NotProtocol
	}
	rlen := int(binary.BigEndian.Uint16(b[3:5]))
	if rlen == 0 || rlen > tlsMaxRecord {
		return Malformed
	}
	return Found
}

// clientHelloServerName walks a complete ClientHello body to its
// server_name extension.
func clientHelloServerName(h, dst []byte) ([]byte, Status) {
	r := tlsReader{b: h}
	r.skip(2 + 32) // legacy_version, random
	r.vec8()       // session_id
	r.vec16()      // cipher_suites
	r.vec8()       // legacy_compression_methods
	if r.bad {
		return nil, Malformed
	}
	if r.off == len(r.b) {
		return nil, Absent // no extensions at all (SSLv3-style hello)
	}
	exts := tlsReader{b: r.vec16()}
	if r.bad || r.off != len(r.b) {
		return nil, Malformed
	}
	var sni []byte
	for exts.off < len(exts.b) {
		typ := exts.u16()
		data := exts.vec16()
		if exts.bad {
			return nil, Malformed
		}
		if typ != tlsExtServerName {
			continue
		}
		if sni != nil {
			return nil, Malformed // RFC 8446 4.2: one extension of each type
		}
		var st Status
		if sni, st = serverNameList(data); st != Found {
			return nil, st
		}
	}
	if sni == nil {
		return nil, Absent
	}
	n := appendLowerName(dst, 0, sni)
	if n <= 0 {
		return nil, Malformed
	}
	return dst[:n], Found
}

// serverNameList returns the host_name of a server_name extension; RFC 6066
// 3 allows one name per type and defines only host_name (0).
func serverNameList(data []byte) ([]byte, Status) {
	r := tlsReader{b: data}
	list := tlsReader{b: r.vec16()}
	if r.bad || r.off != len(r.b) {
		return nil, Malformed
	}
	var host []byte
	for list.off < len(list.b) {
		typ := list.u8()
		name := list.vec16()
		if list.bad || typ != 0 || host != nil || len(name) == 0 {
			return nil, Malformed
		}
		host = name
	}
	if host == nil {
		return nil, Malformed
	}
	return host, Found
}

// tlsReader reads big-endian fields and length-prefixed vectors; a read
// past the end sets bad and returns zero values, so a walk checks once.
type tlsReader struct {
	b   []byte
	off int
	bad bool
}

func (r *tlsReader) take(n int) []byte {
	if r.bad || n > len(r.b)-r.off {
		r.bad = true
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *tlsReader) skip(n int) { r.take(n) }

func (r *tlsReader) u8() int {
	if s := r.take(1); s != nil {
		return int(s[0])
	}
	return 0
}

func (r *tlsReader) u16() int {
	if s := r.take(2); s != nil {
		return int(binary.BigEndian.Uint16(s))
	}
	return 0
}

func (r *tlsReader) vec8() []byte  { return r.take(r.u8()) }
func (r *tlsReader) vec16() []byte { return r.take(r.u16()) }
