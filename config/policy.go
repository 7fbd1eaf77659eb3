package config

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/qguard/qguard/proto"
	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/verdict"
)

// ruleInfo remembers where a rule and each of its keys (match keys
// included) were written.
type ruleInfo struct {
	at   pos
	keys map[string]pos
}

func (r ruleInfo) key(k string) pos {
	if p, ok := r.keys[k]; ok {
		return p
	}
	return r.at
}

func (d *decoder) policy(p *verdict.Policy, n *yaml.Node) []ruleInfo {
	var infos []ruleInfo
	d.mapping(n, "policy", fields{
		"default":    func(v *yaml.Node) { p.Default = d.action(v, "policy.default", p.Default) },
		"invalid":    func(v *yaml.Node) { p.Invalid = d.action(v, "policy.invalid", p.Invalid) },
		"l7_packets": func(v *yaml.Node) { p.L7Packets = d.intIn(v, "policy.l7_packets", 1, 255, p.L7Packets) },
		"l7_undecided": func(v *yaml.Node) {
			p.L7Undecided = d.action(v, "policy.l7_undecided", p.L7Undecided)
		},
		"sets": func(v *yaml.Node) { p.Sets = d.sets(v) },
		"rules": func(v *yaml.Node) {
			names := map[string]int{}
			d.list(v, "policy.rules", func(it *yaml.Node) {
				r, info := d.rule(it, names)
				p.Rules = append(p.Rules, r)
				infos = append(infos, info)
			})
		},
	})
	// Set references are checked here, where every set is known.
	for i := range p.Rules {
		m := &p.Rules[i].Match
		for _, ref := range []struct {
			key   string
			names []string
		}{{"src", m.SrcSets}, {"dst", m.DstSets}} {
			for _, name := range ref.names {
				if _, ok := p.Sets[name]; !ok {
					d.errAt(infos[i].key(ref.key), "%s: unknown prefix set %q; define it under policy.sets", ref.key, "@"+name)
				}
			}
		}
	}
	return infos
}

// sets parses policy.sets: name -> list of prefixes, or {file: path} with
// one prefix a line.
func (d *decoder) sets(n *yaml.Node) map[string][]netip.Prefix {
	out := map[string][]netip.Prefix{}
	fs := fields{}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			name := n.Content[i].Value
			fs[name] = func(v *yaml.Node) {
				if !validSetName(name) {
					d.errf(n.Content[i], "policy.sets: %q: expected a set name of letters, digits, '-' or '_'", name)
					return
				}
				if v.Kind == yaml.MappingNode {
					d.mapping(v, "policy.sets."+name, fields{"file": func(f *yaml.Node) { out[name] = d.setFile(f, name) }})
					return
				}
				var ps []netip.Prefix
				d.list(v, "policy.sets."+name, func(it *yaml.Node) {
					if s, ok := d.scalarString(it, "policy.sets."+name); ok {
						if p, ok := d.prefix(it, s, "policy.sets."+name); ok {
							ps = append(ps, p)
						}
					}
				})
				out[name] = ps
			}
		}
	}
	d.mapping(n, "policy.sets", fs)
	return out
}

func validSetName(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) < 0
}

// setFile reads a prefix list file: one prefix or address a line, '#'
// comments. Its errors are reported at the file's own lines.
func (d *decoder) setFile(n *yaml.Node, name string) []netip.Prefix {
	path, ok := d.scalarString(n, "policy.sets."+name+".file")
	if !ok {
		return nil
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(d.dir, path)
	}
	data, err := ReadFile(path)
	if err != nil {
		d.errf(n, "policy.sets.%s.file: %v", name, err)
		return nil
	}
	var out []netip.Prefix
	sub := &decoder{file: path, dir: filepath.Dir(path)}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for line := 1; sc.Scan(); line++ {
		s, _, _ := strings.Cut(sc.Text(), "#")
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		fake := &yaml.Node{Line: line, Column: 1}
		if p, ok := sub.prefix(fake, s, "prefix"); ok {
			out = append(out, p)
		}
		if len(sub.errs) > 20 {
			sub.errAt(pos{line, 0}, "too many errors, giving up on this file")
			break
		}
	}
	d.errs = append(d.errs, sub.errs...)
	return out
}

// prefix parses "198.18.0.0/15" or a single address.
func (d *decoder) prefix(n *yaml.Node, s, what string) (netip.Prefix, bool) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			d.errf(n, "%s: %q is not an address or prefix; expected one like 198.18.0.0/15 or 2001:db8::/32", what, s)
			return netip.Prefix{}, false
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		d.errf(n, "%s: %q is not a prefix; expected one like 198.18.0.0/15 or 2001:db8::/32", what, s)
		return netip.Prefix{}, false
	}
	if p.Addr().Is4In6() {
		d.errf(n, "%s: %q is an IPv4-mapped IPv6 prefix; write the IPv4 prefix instead", what, s)
		return netip.Prefix{}, false
	}
	if m := p.Masked(); m != p {
		d.errf(n, "%s: %q has bits set past the prefix length; expected %s", what, s, m)
		return netip.Prefix{}, false
	}
	return p, true
}

// rule parses one entry of policy.rules.
func (d *decoder) rule(n *yaml.Node, names map[string]int) (verdict.Rule, ruleInfo) {
	var r verdict.Rule
	info := ruleInfo{at: at(n), keys: map[string]pos{}}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			info.keys[n.Content[i].Value] = at(n.Content[i])
		}
	}
	var hasName, hasAction bool
	d.mapping(n, "a policy rule", fields{
		"name": func(v *yaml.Node) {
			s, ok := d.scalarString(v, "name")
			if !ok {
				return
			}
			hasName = true
			if s == "" {
				d.errf(v, "name: expected a non-empty rule name")
			} else if line, dup := names[s]; dup {
				d.errf(v, "duplicate rule name %q (first used on line %d); expected unique names", s, line)
			} else {
				names[s] = v.Line
			}
			r.Name = s
		},
		"match":  func(v *yaml.Node) { d.match(&r.Match, v, info) },
		"action": func(v *yaml.Node) { hasAction = true; r.Action = d.action(v, "action", verdict.ActionUnset) },
		"mark": func(v *yaml.Node) {
			r.Mark = uint32(d.uintIn(v, "mark", 0, 1<<32-1, 0))
			r.SetMark = true
		},
		"log":          d.boolean(&r.Log, "log"),
		"flow":         d.boolean(&r.Flow, "flow"),
		"block_source": d.duration(&r.BlockSource, "block_source"),
		"rate_limit":   func(v *yaml.Node) { r.RateLimit = d.rateLimit(v) },
		"alert_as": func(v *yaml.Node) {
			if r.AlertAs = d.action(v, "alert_as", verdict.ActionUnset); r.AlertAs == verdict.ActionAccept {
				d.errf(v, "alert_as: an alert trials drop or reject; expected drop or reject")
			}
		},
	})
	if n.Kind == yaml.MappingNode {
		if !hasName {
			d.errf(n, "policy rule: missing key \"name\"; every rule needs a unique name")
		}
		if !hasAction {
			d.errf(n, "policy rule: missing key \"action\"; expected accept, drop, reject or alert")
		}
	}
	if r.Flow && r.RateLimit != nil {
		d.errAt(info.key("flow"), "flow: true hands the flow to the kernel, which a rate limit cannot follow; use one or the other")
	}
	return r, info
}

func (d *decoder) rateLimit(n *yaml.Node) *verdict.RateLimit {
	rl := &verdict.RateLimit{Key: verdict.RateKeySource, Exceed: verdict.ActionDrop}
	var hasRate bool
	d.mapping(n, "rate_limit", fields{
		"rate":  func(v *yaml.Node) { hasRate = true; rl.Rate = d.rate(v, "rate_limit.rate", false, rl.Rate) },
		"burst": func(v *yaml.Node) { rl.Burst = d.intIn(v, "rate_limit.burst", 1, 1<<30, 0) },
		"key": func(v *yaml.Node) {
			s, ok := d.scalarString(v, "rate_limit.key")
			if !ok {
				return
			}
			k, ok := verdict.ParseRateKey(s)
			if !ok {
				d.errf(v, "rate_limit.key: unknown key %q; expected source, flow or rule", s)
				return
			}
			rl.Key = k
		},
		"exceed":   func(v *yaml.Node) { rl.Exceed = d.action(v, "rate_limit.exceed", rl.Exceed) },
		"max_keys": func(v *yaml.Node) { rl.MaxKeys = d.intIn(v, "rate_limit.max_keys", 1, 1<<24, 0) },
	})
	if !hasRate && n.Kind == yaml.MappingNode {
		d.errf(n, "rate_limit: missing key \"rate\"; expected a rate like 100/s")
	}
	return rl
}

// match parses a rule's match mapping.
func (d *decoder) match(m *verdict.Match, n *yaml.Node, info ruleInfo) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			info.keys[n.Content[i].Value] = at(n.Content[i])
		}
	}
	d.mapping(n, "match", fields{
		"family": func(v *yaml.Node) {
			s, ok := d.scalarString(v, "family")
			switch {
			case !ok:
			case s == "4" || s == "ipv4" || s == "ip":
				m.Family = 4
			case s == "6" || s == "ipv6" || s == "ip6":
				m.Family = 6
			default:
				d.errf(v, "family: unknown family %q; expected ipv4 or ipv6", s)
			}
		},
		"proto": func(v *yaml.Node) {
			d.list(v, "proto", func(it *yaml.Node) {
				s, ok := d.scalarString(it, "proto")
				if !ok {
					return
				}
				if p, known := proto.Number(s); known {
					m.Protos = append(m.Protos, p)
				} else if num, err := strconv.ParseUint(s, 0, 8); err == nil && it.Tag == "!!int" {
					m.Protos = append(m.Protos, uint8(num))
				} else {
					d.errf(it, "proto: unknown protocol %q; expected one of %s, or a number 0-255", s, protoList)
				}
			})
		},
		"src":       func(v *yaml.Node) { m.Src, m.SrcSets = d.prefixes(v, "src") },
		"dst":       func(v *yaml.Node) { m.Dst, m.DstSets = d.prefixes(v, "dst") },
		"sport":     func(v *yaml.Node) { m.SrcPorts = d.ports(v, "sport") },
		"dport":     func(v *yaml.Node) { m.DstPorts = d.ports(v, "dport") },
		"in_iface":  func(v *yaml.Node) { m.InIfaces, m.InIfIndexes = d.ifaces(v, "in_iface") },
		"out_iface": func(v *yaml.Node) { m.OutIfaces, m.OutIfIndexes = d.ifaces(v, "out_iface") },
		"mark":      func(v *yaml.Node) { m.Mark = d.markMatch(v) },
		"uid":       func(v *yaml.Node) { m.UIDs = d.ids(v, "uid") },
		"gid":       func(v *yaml.Node) { m.GIDs = d.ids(v, "gid") },
		"ct": func(v *yaml.Node) {
			d.list(v, "ct", func(it *yaml.Node) {
				s, ok := d.scalarString(it, "ct")
				if !ok {
					return
				}
				b, known := verdict.ParseCTState(s)
				if !known {
					d.errf(it, "ct: unknown conntrack state %q; expected new, established, related, invalid or untracked", s)
					return
				}
				m.CT |= b
			})
		},
		"dns":       func(v *yaml.Node) { m.DNS = d.names(v, "dns") },
		"sni":       func(v *yaml.Node) { m.SNI = d.names(v, "sni") },
		"http_host": func(v *yaml.Node) { m.HTTPHost = d.names(v, "http_host") },
		"dst_name":  func(v *yaml.Node) { m.DstName = d.names(v, "dst_name") },
		"src_name":  func(v *yaml.Node) { m.SrcName = d.names(v, "src_name") },
		"payload":   func(v *yaml.Node) { m.Payload = d.payloads(v) },
	})
}

// prefixes parses a list of prefixes and "@set" references.
func (d *decoder) prefixes(n *yaml.Node, what string) (ps []netip.Prefix, sets []string) {
	d.list(n, what, func(it *yaml.Node) {
		s, ok := d.scalarString(it, what)
		if !ok {
			return
		}
		if name, isSet := strings.CutPrefix(s, "@"); isSet {
			sets = append(sets, name)
			return
		}
		if p, ok := d.prefix(it, s, what); ok {
			ps = append(ps, p)
		}
	})
	return ps, sets
}

// ifaces parses interface names and indexes.
func (d *decoder) ifaces(n *yaml.Node, what string) (names []string, idx []uint32) {
	d.list(n, what, func(it *yaml.Node) {
		if it.Kind == yaml.ScalarNode && it.Tag == "!!int" {
			idx = append(idx, uint32(d.uintIn(it, what, 1, 1<<31-1, 0)))
			return
		}
		s, ok := d.scalarString(it, what)
		if !ok {
			return
		}
		if !proto.ValidIfName(s) {
			d.errf(it, "%s: %q is not an interface name; expected up to 15 characters without '/', ':' or spaces, or an index", what, s)
			return
		}
		names = append(names, s)
	})
	return names, idx
}

// markMatch parses 0x42 (all bits) or "0x10/0xf0" (value/mask).
func (d *decoder) markMatch(n *yaml.Node) *verdict.MarkMatch {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		v := uint32(d.uintIn(n, "mark", 0, 1<<32-1, 0))
		return &verdict.MarkMatch{Value: v, Mask: 0xffffffff}
	}
	s, ok := d.scalarString(n, "mark")
	if !ok {
		return nil
	}
	vs, ms, _ := strings.Cut(s, "/")
	v, errV := strconv.ParseUint(strings.TrimSpace(vs), 0, 32)
	mask, errM := strconv.ParseUint(strings.TrimSpace(ms), 0, 32)
	if errV != nil || errM != nil || ms == "" {
		d.errf(n, "mark: %q is not a mark; expected a number like 0x42 or value/mask like \"0x10/0xf0\"", s)
		return nil
	}
	if v&^mask != 0 {
		d.errf(n, "mark: value %#x has bits outside the mask %#x; expected value & mask == value", v, mask)
		return nil
	}
	return &verdict.MarkMatch{Value: uint32(v), Mask: uint32(mask)}
}

// ids parses user or group IDs and ranges: [0, "1000-1999"].
func (d *decoder) ids(n *yaml.Node, what string) []verdict.IDRange {
	var out []verdict.IDRange
	d.list(n, what, func(it *yaml.Node) {
		s, ok := d.scalarString(it, what)
		if !ok {
			return
		}
		lo, hi, isRange := strings.Cut(s, "-")
		a, errA := strconv.ParseUint(strings.TrimSpace(lo), 10, 32)
		b := a
		var errB error
		if isRange {
			b, errB = strconv.ParseUint(strings.TrimSpace(hi), 10, 32)
		}
		switch {
		case errA != nil || errB != nil:
			d.errf(it, "%s: %q is not an ID; expected a number or a range like \"1000-1999\"", what, s)
		case a > b:
			d.errf(it, "%s: range %q runs backwards; expected the lower ID first", what, s)
		default:
			out = append(out, verdict.IDRange{Lo: uint32(a), Hi: uint32(b)})
		}
	})
	return out
}

// names parses DNS-style name patterns, checking their syntax now so the
// error has a position.
func (d *decoder) names(n *yaml.Node, what string) []string {
	var out []string
	d.list(n, what, func(it *yaml.Node) {
		s, ok := d.scalarString(it, what)
		if !ok {
			return
		}
		if err := verdict.CheckNamePattern(s); err != nil {
			d.errf(it, "%s: %v", what, err)
			return
		}
		out = append(out, s)
	})
	return out
}

// payloads parses byte patterns: plain strings (their UTF-8 bytes) or
// "hex:0001ff" for arbitrary bytes.
func (d *decoder) payloads(n *yaml.Node) [][]byte {
	var out [][]byte
	d.list(n, "payload", func(it *yaml.Node) {
		s, ok := d.scalarString(it, "payload")
		if !ok {
			return
		}
		b := []byte(s)
		if h, isHex := strings.CutPrefix(s, "hex:"); isHex {
			var err error
			if b, err = hex.DecodeString(strings.ReplaceAll(h, " ", "")); err != nil {
				d.errf(it, "payload: %q: expected hex digits after \"hex:\", like hex:00ff10", s)
				return
			}
		}
		if len(b) == 0 {
			d.errf(it, "payload: empty pattern; expected at least one byte")
			return
		}
		out = append(out, b)
	})
	return out
}

// crossCheck reports policy matchers that need a queue option turned off.
func (d *decoder) crossCheck(f *File) {
	for i, r := range f.Policy.Rules {
		if i >= len(f.rulePos) {
			break
		}
		info := f.rulePos[i]
		if r.Match.CT != 0 && f.Queue.Flags&queue.FlagConntrack == 0 {
			d.errAt(info.key("ct"), "ct: rule %q matches conntrack state, which needs queue.conntrack: true", r.Name)
		}
		if (len(r.Match.UIDs) > 0 || len(r.Match.GIDs) > 0) && f.Queue.Flags&queue.FlagUIDGID == 0 {
			k := "uid"
			if len(r.Match.UIDs) == 0 {
				k = "gid"
			}
			d.errAt(info.key(k), "%s: rule %q matches socket owners, which needs queue.uid_gid: true", k, r.Name)
		}
	}
}
