package names

import (
	"bytes"
	"encoding/binary"
	"net/netip"

	"github.com/qguard/qguard/internal/dnswire"
)

// Bounds of what one answer binds: the question and at most MaxChain-1
// CNAME steps, and the first MaxAddrs addresses of those names. Records
// past them are ignored (a CDN answer has a few of each).
const (
	MaxChain  = 8
	MaxAddrs  = 32
	maxCNAMEs = 16
)

// Question is the one question of a DNS message. It is filled by
// ParseQuery or ParseAnswer; callers own it and reuse it.
type Question struct {
	ID   uint16
	Type uint16 // TypeA or TypeAAAA
	name [MaxNameLen]byte
	nlen int
}

// Name returns the question name, lowercased, dotted, without the trailing
// dot. It points into q.
func (q *Question) Name() []byte { return q.name[:q.nlen] }

// Record is an address an answer gives, with its TTL in seconds.
type Record struct {
	Addr netip.Addr
	TTL  uint32
}

// Answer is a DNS response as ParseAnswer reads it: the question, the
// CNAME chain from it and the addresses of the chain's names from the
// answer section. Callers own it and reuse it (it is about 3 KiB).
type Answer struct {
	Question
	RCode     uint8
	Truncated bool // TC: the records are what fitted

	chain  [MaxChain][MaxNameLen]byte
	clen   [MaxChain]int
	nchain int
	addrs  [MaxAddrs]Record
	naddrs int

	// Offsets of the answer section's CNAME owners and targets and of the
	// address records' owners, resolved against the chain after the walk.
	cn      [maxCNAMEs][2]int
	ncn     int
	aowner  [MaxAddrs]int
	scratch [MaxNameLen]byte
}

// ChainLen returns the number of names bound: the question's and those of
// its CNAME chain.
func (a *Answer) ChainLen() int { return a.nchain }

// ChainName returns name i of the chain (0 is the question's).
func (a *Answer) ChainName(i int) []byte { return a.chain[i][:a.clen[i]] }

// Addrs returns the addresses the answer gives for the chain's names, of
// the question's type. It points into a.
func (a *Answer) Addrs() []Record { return a.addrs[:a.naddrs] }

// header reads the fixed header and the question; off is where the
// answer section starts.
func header(msg []byte, q *Question, wantResponse bool) (flags uint16, an, off int, r Result) {
	if len(msg) < headerLen {
		return 0, 0, 0, NotDNS
	}
	flags = binary.BigEndian.Uint16(msg[2:4])
	if flags&0x8000 != 0 != wantResponse {
		return 0, 0, 0, NotDNS
	}
	if flags>>11&0xf != 0 || binary.BigEndian.Uint16(msg[4:6]) != 1 {
		return 0, 0, 0, Unsupported // not a standard query, or not one question
	}
	q.ID = binary.BigEndian.Uint16(msg[0:2])
	n, next, rn := dnswire.ReadName(msg, headerLen, q.name[:])
	if rn != dnswire.OK || next+4 > len(msg) {
		return 0, 0, 0, Malformed
	}
	q.nlen = n
	q.Type = binary.BigEndian.Uint16(msg[next : next+2])
	if c := binary.BigEndian.Uint16(msg[next+2 : next+4]); c != ClassIN || q.Type != TypeA && q.Type != TypeAAAA {
		return 0, 0, 0, Unsupported
	}
	return flags, int(binary.BigEndian.Uint16(msg[6:8])), next + 4, OK
}

// ParseQuery reads a DNS query (QR clear, standard opcode) with one A or
// AAAA question of class IN from a UDP payload or one TCP message without
// its length prefix. It never allocates.
func ParseQuery(msg []byte, q *Question) Result {
	_, _, _, r := header(msg, q, false)
	return r
}

// ParseAnswer reads a DNS response to one A or AAAA question of class IN.
// Only the answer section is read: a CNAME record extends the chain when
// its owner is the chain's last name, and an address record of the
// question's type counts when its owner is any name of the chain. A
// response with an error RCODE gives no addresses. Every record up to
// ANCOUNT must fit the message, or the answer is Malformed and gives
// nothing. It never allocates.
func ParseAnswer(msg []byte, a *Answer) Result {
	a.nchain, a.naddrs, a.ncn = 0, 0, 0
	flags, an, off, r := header(msg, &a.Question, true)
	if r != OK {
		return r
	}
	a.RCode, a.Truncated = uint8(flags&0xf), flags&0x0200 != 0
	var nA int
	for range an {
		owner := off
		var ok bool
		if off, ok = dnswire.SkipName(msg, off); !ok || off+10 > len(msg) {
			return Malformed
		}
		typ := binary.BigEndian.Uint16(msg[off:])
		class := binary.BigEndian.Uint16(msg[off+2:])
		ttl := binary.BigEndian.Uint32(msg[off+4:])
		rdlen := int(binary.BigEndian.Uint16(msg[off+8:]))
		rdata := off + 10
		if off = rdata + rdlen; off > len(msg) {
			return Malformed
		}
		if class != ClassIN {
			continue
		}
		switch typ {
		case TypeCNAME:
			if end, ok := dnswire.SkipName(msg, rdata); !ok || end > off {
				return Malformed
			}
			if a.ncn < maxCNAMEs {
				a.cn[a.ncn] = [2]int{owner, rdata}
				a.ncn++
			}
		case TypeA, TypeAAAA:
			if typ == TypeA && rdlen != 4 || typ == TypeAAAA && rdlen != 16 {
				return Malformed
			}
			if typ == a.Type && nA < MaxAddrs {
				a.aowner[nA] = owner
				a.addrs[nA] = Record{Addr: addrOf(msg[rdata:off]), TTL: ttlOf(ttl)}
				nA++
			}
		}
	}
	if !a.walk(msg) {
		return Malformed
	}
	if a.RCode == 0 {
		a.keep(msg, nA)
	}
	return OK
}

func addrOf(b []byte) netip.Addr {
	if len(b) == 4 {
		return netip.AddrFrom4([4]byte(b))
	}
	return netip.AddrFrom16([16]byte(b))
}

// ttlOf treats a TTL with the top bit set as 0 (RFC 2181 8).
func ttlOf(t uint32) uint32 {
	if t&0x80000000 != 0 {
		return 0
	}
	return t
}

// walk builds the chain: the question name, then the target of the CNAME
// whose owner is the chain's last name, as long as that is a name not in
// the chain yet and there is room.
func (a *Answer) walk(msg []byte) bool {
	a.chain[0], a.clen[0], a.nchain = a.name, a.nlen, 1
	for a.nchain < MaxChain {
		last := a.chain[a.nchain-1][:a.clen[a.nchain-1]]
		next := -1
		for i := 0; i < a.ncn && next < 0; i++ {
			n, _, r := dnswire.ReadName(msg, a.cn[i][0], a.scratch[:])
			if r != dnswire.OK {
				return false
			}
			if bytes.Equal(a.scratch[:n], last) {
				next = a.cn[i][1]
			}
		}
		if next < 0 {
			return true
		}
		n, _, r := dnswire.ReadName(msg, next, a.chain[a.nchain][:])
		if r != dnswire.OK {
			return false
		}
		if a.inChain(a.chain[a.nchain][:n]) {
			return true // a CNAME loop: the chain so far stands
		}
		a.clen[a.nchain] = n
		a.nchain++
	}
	return true
}

func (a *Answer) inChain(name []byte) bool {
	for i := 0; i < a.nchain; i++ {
		if bytes.Equal(a.chain[i][:a.clen[i]], name) {
			return true
		}
	}
	return false
}

// keep compacts the address records to those owned by a chain name.
func (a *Answer) keep(msg []byte, nA int) {
	for i := 0; i < nA; i++ {
		n, _, r := dnswire.ReadName(msg, a.aowner[i], a.scratch[:])
		if r == dnswire.OK && a.inChain(a.scratch[:n]) {
			a.addrs[a.naddrs] = a.addrs[i]
			a.naddrs++
		}
	}
}
