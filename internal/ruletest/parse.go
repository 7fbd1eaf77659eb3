package ruletest

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/internal/yamlpos"
)

// DefaultTimeout is how long a probe waits before calling a packet dropped.
const DefaultTimeout = 300 * time.Millisecond

// Client subnets of internal/topo: extra source addresses must lie in them.
var (
	clientNet4 = netip.MustParsePrefix("198.18.1.0/24")
	clientNet6 = netip.MustParsePrefix("2001:db8:1::/64")
	// Addresses topo gives the client and the firewall's client side.
	takenAddrs = map[netip.Addr]bool{
		netip.MustParseAddr("198.18.1.1"):    true,
		netip.MustParseAddr("2001:db8:1::1"): true,
	}
	mainClient4 = netip.MustParseAddr("198.18.1.2")
	mainClient6 = netip.MustParseAddr("2001:db8:1::2")
)

// configSections are the top-level keys of a qguard config file that a test
// file may carry inline (config.ParseSections reads them).
var configSections = []string{"policy", "queue", "rules"}

// parser collects errors while walking one file's nodes.
type parser struct {
	name string
	errs FileErrors
}

func (p *parser) errf(n *yaml.Node, format string, args ...any) {
	e := &PosError{File: p.name, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

// ParseFile reads and parses the test file at path.
func ParseFile(path string) (*File, error) {
	data, err := config.ReadFile(path)
	if err != nil {
		return nil, &PosError{File: path, Msg: fmt.Sprintf("read test file: %v", err)}
	}
	return Parse(path, data)
}

// Parse parses a test file. name is used in error messages and resolves
// policy_file. Every error is a *PosError (several come as FileErrors);
// errors.Is(err, ErrBadFile) holds for all of them.
func Parse(name string, data []byte) (*File, error) {
	p := &parser{name: name}
	f := &File{Path: name, Timeout: DefaultTimeout, Parallel: true}
	root, probs := yamlpos.Decode(data)
	for _, pr := range probs {
		e := &PosError{File: name, Line: pr.Line, Col: max(pr.Col, 1), Msg: pr.Msg}
		if pr.Syntax {
			e.Msg = "invalid YAML: " + pr.Msg
		}
		p.errs = append(p.errs, e)
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	if root == nil {
		return nil, &PosError{File: name, Msg: "empty test file: expected a mapping with policy (or policy_file) and cases"}
	}
	if root.Kind != yaml.MappingNode {
		p.errf(root, "expected a mapping with policy (or policy_file) and cases, found %s", yamlpos.Kind(root))
		return nil, p.errs
	}
	var policyNode, policyFileNode, casesNode *yaml.Node
	inline := false
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "policy", "queue", "rules":
			inline = true
			if k.Value == "policy" {
				policyNode = k
			}
		case "policy_file":
			policyFileNode = v
		case "topology":
			f.ExtraAddrs = p.topology(v)
		case "timeout":
			f.Timeout = p.duration(v, "timeout")
		case "parallel":
			f.Parallel = p.boolean(v, "parallel")
		case "cases":
			casesNode = v
		default:
			p.errf(k, "unknown key %q: expected policy, policy_file, queue, rules, topology, timeout, parallel or cases", k.Value)
		}
	}
	switch {
	case policyFileNode != nil && inline:
		p.errf(policyFileNode, "policy_file and an inline policy/queue/rules section exclude each other")
	case policyFileNode != nil:
		f.Config, f.ConfigName = p.policyFile(policyFileNode)
	case policyNode != nil:
		f.Config, f.ConfigName, f.inline = data, name, true
	default:
		p.errf(root, "missing policy: expected a policy section or policy_file: PATH")
	}
	if casesNode == nil {
		p.errf(root, "missing cases: expected a list of cases")
	} else {
		f.Cases = p.cases(casesNode, f)
		if _, err := planServers(f.Cases); err != nil {
			var pe *PosError
			if errors.As(err, &pe) {
				pe.File = name
				p.errs = append(p.errs, pe)
			}
		}
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	if p.checkPolicy(f); len(p.errs) > 0 {
		return nil, p.errs
	}
	return f, nil
}

func (p *parser) policyFile(v *yaml.Node) ([]byte, string) {
	if v.Kind != yaml.ScalarNode || v.Value == "" {
		p.errf(v, "policy_file: expected a path (relative to the test file)")
		return nil, ""
	}
	path := v.Value
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(p.name), path)
	}
	data, err := config.ReadFile(path)
	if err != nil {
		p.errf(v, "policy_file: %v", err)
		return nil, ""
	}
	return data, path
}

func (p *parser) topology(v *yaml.Node) []netip.Addr {
	if v.Kind != yaml.MappingNode {
		p.errf(v, "topology: expected a mapping such as {client_addrs: [198.18.1.10, 2001:db8:1::10]}")
		return nil
	}
	var out []netip.Addr
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		switch k.Value {
		case "client_addrs":
			for _, n := range p.seq(val, "topology.client_addrs") {
				a, ok := p.clientAddr(n, "topology.client_addrs")
				if ok && a != mainClient4 && a != mainClient6 && !containsAddr(out, a) {
					out = append(out, a)
				}
			}
		default:
			p.errf(k, "topology: unknown key %q: expected client_addrs", k.Value)
		}
	}
	return out
}

// clientAddr parses a source address that must lie in a client subnet.
func (p *parser) clientAddr(n *yaml.Node, what string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		p.errf(n, "%s: expected an IPv4 or IPv6 address, found %q", what, n.Value)
		return netip.Addr{}, false
	}
	a = a.Unmap()
	if !clientNet4.Contains(a) && !clientNet6.Contains(a) {
		p.errf(n, "%s: %s is outside the client subnets %s and %s", what, a, clientNet4, clientNet6)
		return netip.Addr{}, false
	}
	if takenAddrs[a] {
		p.errf(n, "%s: %s belongs to the firewall", what, a)
		return netip.Addr{}, false
	}
	return a, true
}

func (p *parser) seq(v *yaml.Node, what string) []*yaml.Node {
	if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
		return []*yaml.Node{v} // a single value is a list of one
	}
	if v.Kind != yaml.SequenceNode {
		p.errf(v, "%s: expected a list", what)
		return nil
	}
	return v.Content
}

func (p *parser) duration(v *yaml.Node, what string) time.Duration {
	d, err := time.ParseDuration(v.Value)
	if v.Kind != yaml.ScalarNode || err != nil || d <= 0 || d > time.Minute {
		p.errf(v, "%s: expected a duration between 1ms and 1m such as 300ms, found %q", what, v.Value)
		return DefaultTimeout
	}
	return d
}

func (p *parser) boolean(v *yaml.Node, what string) bool {
	switch v.Value {
	case "true", "yes", "on":
		return true
	case "false", "no", "off":
		return false
	}
	p.errf(v, "%s: expected true or false, found %q", what, v.Value)
	return false
}

func (p *parser) uint(v *yaml.Node, what string, max uint64) (uint64, bool) {
	n, err := strconv.ParseUint(v.Value, 0, 64)
	if v.Kind != yaml.ScalarNode || err != nil || n > max {
		p.errf(v, "%s: expected a number from 0 to %d, found %q", what, max, v.Value)
		return 0, false
	}
	return n, true
}

func (p *parser) port(v *yaml.Node, what string) uint16 {
	n, ok := p.uint(v, what, math.MaxUint16)
	if ok && n == 0 {
		p.errf(v, "%s: expected a port from 1 to 65535, found 0", what)
	}
	return uint16(n)
}

func (p *parser) str(v *yaml.Node, what string) string {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		p.errf(v, "%s: expected a string", what)
		return ""
	}
	return v.Value
}

// dnsTypes are the query types a DNS case may ask for.
var dnsTypes = map[string]dnsmessage.Type{
	"A": dnsmessage.TypeA, "AAAA": dnsmessage.TypeAAAA, "TXT": dnsmessage.TypeTXT,
	"MX": dnsmessage.TypeMX, "NS": dnsmessage.TypeNS, "CNAME": dnsmessage.TypeCNAME,
	"PTR": dnsmessage.TypePTR, "SOA": dnsmessage.TypeSOA, "SRV": dnsmessage.TypeSRV,
}
