package testsrv

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/netip"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is a responder for any name: A is answered with A4, AAAA with A6
// (no record when unset), TXT with "qguard-test", anything else with an
// empty NOERROR.
type DNS struct {
	A4, A6 netip.Addr
}

// Answer returns the response to query, nil for a message that is not a
// query with a question.
func (d DNS) Answer(query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
	switch {
	case q.Type == dnsmessage.TypeA && d.A4.Is4():
		_ = b.AResource(rh, dnsmessage.AResource{A: d.A4.As4()})
	case q.Type == dnsmessage.TypeAAAA && d.A6.Is6():
		_ = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: d.A6.As16()})
	case q.Type == dnsmessage.TypeTXT:
		_ = b.TXTResource(rh, dnsmessage.TXTResource{TXT: []string{"qguard-test"}})
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// ServeUDP answers the queries pc reads until pc is closed.
func (d DNS) ServeUDP(pc net.PacketConn) { ServePacket(pc, d.Answer) }

// ServeTCP answers the length-prefixed queries of one connection (RFC 1035
// 4.2.2) until the client closes or sends something that is not a query.
func (d DNS) ServeTCP(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(r, q); err != nil {
			return
		}
		a := d.Answer(q)
		if a == nil {
			return
		}
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(a))), a...)); err != nil {
			return
		}
	}
}
