package ruletest

import (
	"fmt"
	"strconv"
)

// serverPlan maps ports to the service listening there.
type serverPlan struct {
	tcp map[uint16]Kind // KindTCP (echo), KindDNS, KindTLS, KindHTTP
	udp map[uint16]Kind // KindUDP (echo), KindDNS
}

// planServers decides what listens where. A plain TCP connect without data
// is answered by any TCP service; every other kind needs its own port.
func planServers(cases []Case) (serverPlan, error) {
	p := serverPlan{tcp: map[uint16]Kind{}, udp: map[uint16]Kind{}}
	owner := map[string]string{}
	for i := range cases {
		c := &cases[i]
		s := &c.Send
		if s.Kind == KindICMP || (s.Kind == KindTCP && len(s.Data) == 0) {
			continue
		}
		m := p.tcp
		if s.Proto() == "udp" {
			m = p.udp
		}
		key := s.Proto() + "/" + strconv.Itoa(int(s.Port))
		if prev, ok := m[s.Port]; ok && prev != s.Kind {
			return p, &PosError{Line: c.Line, Col: c.Col, Msg: fmt.Sprintf("case %q: %s port %d already serves %s for case %s; use another port", c.Name, s.Proto(), s.Port, prev, owner[key])}
		}
		m[s.Port] = s.Kind
		owner[key] = strconv.Quote(c.Name)
	}
	for i := range cases {
		s := &cases[i].Send
		if _, ok := p.tcp[s.Port]; s.Kind == KindTCP && !ok {
			p.tcp[s.Port] = KindTCP
		}
	}
	return p, nil
}
