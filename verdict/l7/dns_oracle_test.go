package l7

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/qguard/qguard/internal/dnswire"
	"github.com/qguard/qguard/internal/pktbuild"
)

// The DNS decoder against github.com/miekg/dns as the oracle: messages it
// packs (with compression), and crafted names with pointers forwards,
// backwards and in loops, read by both.

// oracleLabel is a random label from letters (both cases), digits and '-',
// characters that both decoders print the same way.
func oracleLabel(r *rand.Rand) string {
	const abc = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
	n := 1 + r.IntN(12)
	if r.IntN(20) == 0 {
		n = 63
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = abc[r.IntN(len(abc))]
	}
	return string(b)
}

// TestDNSOracleQuestions packs messages with several questions and
// compressed answers sharing their suffixes, and reads the questions back.
func TestDNSOracleQuestions(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	suffixes := []string{"blocked.test.", "example.com.", "a.b.c.d.", "."}
	buf := make([]byte, MaxNameLen)
	for i := 0; i < 3000; i++ {
		m := new(dns.Msg)
		m.Id = uint16(r.Uint32())
		m.Compress = true
		var want []string
		for q := 0; q < 1+r.IntN(4); q++ {
			var labels []string
			for l := 0; l < r.IntN(4); l++ {
				labels = append(labels, oracleLabel(r))
			}
			name := strings.Join(append(labels, suffixes[r.IntN(len(suffixes))]), ".")
			name = strings.TrimPrefix(strings.ReplaceAll(name, "..", "."), ".")
			if name == "" {
				name = "."
			}
			if _, ok := dns.IsDomainName(name); !ok || len(name) > 254 {
				continue
			}
			m.Question = append(m.Question, dns.Question{Name: name, Qtype: dns.TypeA, Qclass: dns.ClassINET})
			if len(name) < 240 {
				m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET}, Target: dns.Fqdn("x." + strings.TrimSuffix(name, "."))})
			}
			want = append(want, strings.ToLower(strings.TrimSuffix(name, ".")))
		}
		wire, err := m.Pack()
		if err != nil {
			t.Fatalf("%v: %v", m.Question, err)
		}
		for _, overTCP := range []bool{false, true} {
			payload := wire
			if overTCP {
				payload = pktbuild.TCPDNS(wire)
			}
			q, st := ParseDNS(payload, overTCP)
			if st != Found || int(q.Count) != len(want) {
				t.Fatalf("%x: ParseDNS %s, %d questions, want %d", wire, st, q.Count, len(want))
			}
			for j, w := range want {
				name, _, _, st := q.Next(buf[:0])
				if st != Found || string(name) != w {
					t.Fatalf("%x: question %d = %q %s, want %q", wire, j, name, st, w)
				}
			}
			if _, _, _, st := q.Next(buf[:0]); st != Absent {
				t.Fatalf("after the last question: %s", st)
			}
		}
	}
}

// escapeName prints a dotted name the way miekg/dns does (RFC 4343
// escapes for special and non-printable bytes).
func escapeName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.':
			b.WriteByte('.')
		case strings.IndexByte(" '@;()\"\\", c) >= 0:
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			b.WriteString(fmt.Sprintf("\\%03d", c))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// TestDNSOracleCraftedPointers reads names made of random labels and
// pointers anywhere in the message with both decoders. Where miekg/dns
// reads a name, ours must read the same (a name a resolver reads and qguard
// did not would pass a dns rule); where ours reads one and miekg does not,
// only miekg's own limits may be the reason.
func TestDNSOracleCraftedPointers(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, MaxNameLen)
	agree, forward := 0, 0
	for i := 0; i < 200000; i++ {
		msg := make([]byte, dnsHeaderLen, 300)
		n := 2 + r.IntN(12)
		for k := 0; k < n; k++ {
			switch r.IntN(4) {
			case 0:
				msg = append(msg, 0)
			case 1:
				off := r.IntN(dnsHeaderLen + 2*n + 40)
				msg = append(msg, 0xc0|byte(off>>8), byte(off))
			default:
				l := oracleLabel(r)
				if len(l) > 20 {
					l = l[:20]
				}
				msg = append(msg, byte(len(l)))
				msg = append(msg, l...)
			}
		}
		msg = append(msg, 0)
		ref, refNext, refErr := dns.UnpackDomainName(msg, dnsHeaderLen)
		ln, next, r := dnswire.ReadName(msg, dnsHeaderLen, buf)
		st := dnsStatus[r]
		got := string(buf[:ln])
		if refErr == nil {
			refName := strings.ToLower(strings.TrimSuffix(ref, "."))
			if strings.Contains(refName, `\.`) {
				// A label holding a dot: refused by qguard (it would print
				// as two labels), so the policy decides; never passed as
				// another name.
				if st != Malformed {
					t.Fatalf("%x: label with a dot: %s", msg, st)
				}
				continue
			}
			if st != Found || escapeName(got) != refName || next != refNext {
				t.Fatalf("%x: ours %q next %d %s; miekg %q next %d", msg, escapeName(got), next, st, refName, refNext)
			}
			agree++
			if msg[dnsHeaderLen]&0xc0 == 0xc0 && int(msg[dnsHeaderLen+1]) > dnsHeaderLen {
				forward++
			}
			continue
		}
		if st == Found && !strings.Contains(refErr.Error(), "too many compression pointers") &&
			!strings.Contains(refErr.Error(), "too long") {
			t.Fatalf("%x: ours %q, miekg: %v", msg, got, refErr)
		}
	}
	if agree < 1000 || forward < 100 {
		t.Errorf("only %d names read by both, %d starting with a forward pointer: the generator needs work", agree, forward)
	}
}
