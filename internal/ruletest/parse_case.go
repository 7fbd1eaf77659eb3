package ruletest

import (
	"math"
	"net/netip"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/qguard/qguard/internal/yamlpos"
)

const sendHelp = "expected one of tcp: {port}, udp: {port, data}, icmp (or ping), dns: {name, type, over}, tls: {sni, port}, http: {host, path, port}"

func (p *parser) cases(v *yaml.Node, f *File) []Case {
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		p.errf(v, "cases: expected a non-empty list of cases")
		return nil
	}
	seen := map[string]*yaml.Node{}
	var out []Case
	for _, n := range v.Content {
		c, ok := p.oneCase(n)
		if !ok {
			continue
		}
		if prev, dup := seen[c.Name]; dup {
			p.errf(n, "case %q: the name is already used at line %d", c.Name, prev.Line)
			continue
		}
		seen[c.Name] = n
		if c.From.IsValid() && !containsAddr(f.ExtraAddrs, c.From) && c.From != mainClient4 && c.From != mainClient6 {
			f.ExtraAddrs = append(f.ExtraAddrs, c.From)
		}
		out = append(out, c)
	}
	return out
}

func containsAddr(l []netip.Addr, a netip.Addr) bool {
	for _, x := range l {
		if x == a {
			return true
		}
	}
	return false
}

func (p *parser) oneCase(n *yaml.Node) (Case, bool) {
	c := Case{Line: n.Line, Col: n.Column, Repeat: 1}
	if n.Kind != yaml.MappingNode {
		p.errf(n, "case: expected a mapping with name, send and expect, found %s", yamlpos.Kind(n))
		return c, false
	}
	before := len(p.errs)
	var fromNode, familyNode, sendNode, expectNode, markNode *yaml.Node
	var fwOnly []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "name":
			c.Name = p.str(v, "name")
		case "send":
			sendNode = v
			c.Send = p.send(v)
		case "from":
			fromNode = v
			if v.Value == "firewall" {
				c.FromFirewall = true
			} else {
				c.From, _ = p.clientAddr(v, "from")
			}
		case "uid", "gid", "socket_mark":
			fwOnly = append(fwOnly, k)
			n, ok := p.uint(v, k.Value, math.MaxUint32)
			if !ok {
				break
			}
			id := uint32(n)
			switch k.Value {
			case "uid":
				c.UID = &id
			case "gid":
				c.GID = &id
			default:
				c.SocketMark = id
			}
		case "family":
			familyNode = v
			switch v.Value {
			case "4", "ipv4":
				c.Family = 4
			case "6", "ipv6":
				c.Family = 6
			default:
				p.errf(v, "family: expected 4 or 6, found %q", v.Value)
			}
		case "expect":
			expectNode = v
			c.Expect = p.expect(v)
		case "rule":
			c.Rule, c.RuleLine, c.RuleCol = p.str(v, "rule"), v.Line, v.Column
		case "mark":
			markNode = v
			m, ok := p.uint(v, "mark", math.MaxUint32)
			c.Mark, c.HasMark = uint32(m), ok
		case "metrics":
			c.Metrics = p.metrics(v)
		case "logged":
			b := p.boolean(v, "logged")
			c.Logged = &b
		case "repeat":
			r, ok := p.uint(v, "repeat", 100)
			if ok && r == 0 {
				p.errf(v, "repeat: expected a number from 1 to 100")
			}
			c.Repeat = int(r)
		default:
			p.errf(k, "case: unknown key %q: expected name, send, from, family, expect, rule, mark, metrics, logged, repeat, uid, gid or socket_mark", k.Value)
		}
	}
	for _, k := range fwOnly {
		if !c.FromFirewall {
			p.errf(k, "%s: only with from: firewall (locally sent packets have an owner and a socket mark)", k.Value)
		}
	}
	if c.Name == "" {
		p.errf(n, "case: missing name")
	}
	if sendNode == nil {
		p.errf(n, "case %q: missing send: %s", c.Name, sendHelp)
	}
	if expectNode == nil {
		p.errf(n, "case %q: missing expect: expected delivered, dropped, rejected or modified", c.Name)
	}
	p.family(&c, fromNode, familyNode)
	if markNode != nil && c.Expect != Modified && c.Expect != ExpectUnset {
		p.errf(markNode, "mark: only meaningful with expect: modified")
	}
	if c.Expect == Modified && c.Send.Kind == KindICMP {
		p.errf(expectNode, "expect: modified needs traffic with ports (tcp, udp, dns, tls or http): the mark observer keys on the source port")
	}
	return c, len(p.errs) == before
}

// family settles the address family from `family:` and `from:`.
func (p *parser) family(c *Case, fromNode, familyNode *yaml.Node) {
	fromFam := 0
	if c.From.IsValid() {
		fromFam = 4
		if c.From.Is6() {
			fromFam = 6
		}
	}
	switch {
	case c.Family == 0 && fromFam != 0:
		c.Family = fromFam
	case c.Family == 0:
		c.Family = 4
	case fromFam != 0 && fromFam != c.Family:
		p.errf(fromNode, "from: %s is IPv%d but family is %d (line %d)", c.From, fromFam, c.Family, familyNode.Line)
	}
}

func (p *parser) expect(v *yaml.Node) Expect {
	switch v.Value {
	case "delivered":
		return Delivered
	case "dropped":
		return Dropped
	case "rejected":
		return Rejected
	case "modified":
		return Modified
	}
	p.errf(v, "expect: expected delivered, dropped, rejected or modified, found %q", v.Value)
	return ExpectUnset
}

func (p *parser) metrics(v *yaml.Node) []Metric {
	if v.Kind != yaml.MappingNode {
		p.errf(v, "metrics: expected a mapping of counter name to delta, such as {rule_hits: 1}")
		return nil
	}
	var out []Metric
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		m := Metric{Name: k.Value, Line: val.Line, Col: val.Column}
		s := strings.TrimSpace(val.Value)
		if rest, ok := strings.CutPrefix(s, ">="); ok {
			m.AtLeast, s = true, strings.TrimSpace(rest)
		}
		d, err := strconv.ParseInt(s, 0, 64)
		if val.Kind != yaml.ScalarNode || err != nil || d < 0 {
			p.errf(val, "metrics.%s: expected a delta such as 1 or \">=1\", found %q", k.Value, val.Value)
			continue
		}
		m.Delta = d
		out = append(out, m)
	}
	return out
}

// send parses `send:`: a mapping with exactly one kind, or the scalars icmp
// and ping.
func (p *parser) send(v *yaml.Node) Send {
	if v.Kind == yaml.ScalarNode {
		if v.Value == "icmp" || v.Value == "ping" {
			return Send{Kind: KindICMP}
		}
		p.errf(v, "send: %s, found %q", sendHelp, v.Value)
		return Send{}
	}
	if v.Kind != yaml.MappingNode || len(v.Content) != 2 {
		p.errf(v, "send: %s (exactly one)", sendHelp)
		return Send{}
	}
	k, body := v.Content[0], v.Content[1]
	s := Send{}
	fields := map[string]*yaml.Node{}
	if body.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(body.Content); i += 2 {
			fields[body.Content[i].Value] = body.Content[i+1]
		}
	} else if body.Tag != "!!null" {
		p.errf(body, "send.%s: expected a mapping", k.Value)
		return s
	}
	var allowed []string
	switch k.Value {
	case "tcp":
		s.Kind, allowed = KindTCP, []string{"port", "data", "sport"}
	case "udp":
		s.Kind, allowed = KindUDP, []string{"port", "data", "sport", "ext_headers"}
		s.Data = []byte("qguard-test")
	case "icmp", "ping":
		s.Kind = KindICMP
	case "dns":
		s.Kind, allowed = KindDNS, []string{"name", "type", "over", "port", "first", "together", "split"}
		s.Port, s.QType = 53, uint16(dnsTypes["A"])
	case "tls":
		s.Kind, allowed = KindTLS, []string{"sni", "port", "records"}
		s.Port = 443
	case "http":
		s.Kind, allowed = KindHTTP, []string{"host", "path", "port", "first", "together"}
		s.Port, s.Path = 80, "/"
	default:
		p.errf(k, "send: unknown kind %q: %s", k.Value, sendHelp)
		return Send{}
	}
	for i := 0; body.Kind == yaml.MappingNode && i+1 < len(body.Content); i += 2 {
		fk := body.Content[i]
		if !contains(allowed, fk.Value) {
			if len(allowed) == 0 {
				p.errf(fk, "send.%s: unknown key %q: icmp takes no options", k.Value, fk.Value)
			} else {
				p.errf(fk, "send.%s: unknown key %q: expected %s", k.Value, fk.Value, strings.Join(allowed, ", "))
			}
		}
	}
	p.sendFields(&s, k, fields)
	return s
}

func (p *parser) sendFields(s *Send, k *yaml.Node, f map[string]*yaml.Node) {
	what := "send." + k.Value
	if n := f["port"]; n != nil {
		s.Port = p.port(n, what+".port")
	} else if s.Kind == KindTCP || s.Kind == KindUDP {
		p.errf(k, "%s: missing port", what)
	}
	if n := f["sport"]; n != nil {
		s.SPort = p.port(n, what+".sport")
	}
	if n := f["data"]; n != nil {
		s.Data = []byte(p.str(n, what+".data"))
		if len(s.Data) == 0 || len(s.Data) > 1200 {
			p.errf(n, "%s.data: expected 1 to 1200 bytes", what)
		}
	}
	p.evasionFields(s, what, f)
	switch s.Kind {
	case KindDNS:
		if n := f["name"]; n != nil {
			s.Name = p.str(n, what+".name")
		}
		if s.Name == "" || len(s.Name) > 253 {
			p.errf(k, "%s: expected name: a domain name such as www.example", what)
		}
		if n := f["type"]; n != nil {
			t, ok := dnsTypes[strings.ToUpper(n.Value)]
			if !ok {
				p.errf(n, "%s.type: expected A, AAAA, TXT, MX, NS, CNAME, PTR, SOA or SRV, found %q", what, n.Value)
			}
			s.QType = uint16(t)
		}
		if n := f["over"]; n != nil {
			switch n.Value {
			case "udp":
			case "tcp":
				s.OverTCP = true
			default:
				p.errf(n, "%s.over: expected udp or tcp, found %q", what, n.Value)
			}
		}
	case KindTLS:
		if n := f["sni"]; n != nil {
			s.SNI = p.str(n, what+".sni")
		}
		if s.SNI == "" {
			p.errf(k, "%s: expected sni: the server name sent in the ClientHello", what)
		}
	case KindHTTP:
		if n := f["host"]; n != nil {
			s.Host = p.str(n, what+".host")
		}
		if s.Host == "" {
			p.errf(k, "%s: expected host: the Host header", what)
		}
		if n := f["path"]; n != nil {
			s.Path = p.str(n, what+".path")
			if !strings.HasPrefix(s.Path, "/") || strings.ContainsAny(s.Path, " \r\n") {
				p.errf(n, "%s.path: expected an absolute path without spaces, such as /index.html", what)
			}
		}
	}
}

// evasionFields parses the options that send a message the way a client
// evading a rule would: after a first message, together with it, split.
func (p *parser) evasionFields(s *Send, what string, f map[string]*yaml.Node) {
	if n := f["first"]; n != nil {
		s.First = p.str(n, what+".first")
		if s.First == "" || len(s.First) > 253 {
			p.errf(n, "%s.first: expected a name (DNS) or host (HTTP) sent first", what)
		}
	}
	for _, k := range []struct {
		key string
		dst *bool
	}{{"together", &s.Together}, {"split", &s.Split}} {
		if n := f[k.key]; n != nil {
			switch n.Value {
			case "true":
				*k.dst = true
			case "false":
			default:
				p.errf(n, "%s.%s: expected true or false, found %q", what, k.key, n.Value)
			}
		}
	}
	if s.Together && s.First == "" {
		p.errf(f["together"], "%s.together: needs first: the message sent together with the case's", what)
	}
	for _, k := range []struct {
		key    string
		dst    *int
		lo, hi int
	}{{"records", &s.Records, 1, 16}, {"ext_headers", &s.ExtHeaders, 1, 200}} {
		if n := f[k.key]; n != nil {
			v, err := strconv.Atoi(n.Value)
			if err != nil || v < k.lo || v > k.hi {
				p.errf(n, "%s.%s: expected a number from %d to %d, found %q", what, k.key, k.lo, k.hi, n.Value)
			}
			*k.dst = v
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
