package ruletest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/qguard/qguard/internal/topo"
	"github.com/qguard/qguard/proto"
)

// observerTable is the runner's own nftables table in the firewall
// namespace. It never decides anything: a postrouting chain at the last
// priority records (source, protocol, source port, mark) of every marked
// packet leaving towards the server, which is how "modified" is checked.
const observerTable = "qguard_ruletest"

const observerRuleset = `table inet %[1]s {
	set seen4 { type ipv4_addr . inet_proto . inet_service . mark; flags dynamic; size 65535; }
	set seen6 { type ipv6_addr . inet_proto . inet_service . mark; flags dynamic; size 65535; }
	chain observe {
		type filter hook postrouting priority 2147483647; policy accept;
		meta mark != 0 oifname "%[2]s" meta nfproto ipv4 meta l4proto { tcp, udp } add @seen4 { ip saddr . meta l4proto . th sport . meta mark }
		meta mark != 0 oifname "%[2]s" meta nfproto ipv6 meta l4proto { tcp, udp } add @seen6 { ip6 saddr . meta l4proto . th sport . meta mark }
	}
}
`

// installObserver creates the observer table in ns; the namespace's removal
// takes it away.
func installObserver(ns topo.NS, outIf string) error {
	cmd := ns.Command(context.Background(), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(fmt.Sprintf(observerRuleset, observerTable, outIf))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("install mark observer: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// observedMarks returns the marks seen on packets from src (address and
// source port) with IP protocol proto.
func observedMarks(ns topo.NS, src netip.AddrPort, proto uint8) ([]uint32, error) {
	set := "seen4"
	if src.Addr().Is6() {
		set = "seen6"
	}
	out, err := ns.Output("nft", "-j", "list", "set", "inet", observerTable, set)
	if err != nil {
		return nil, fmt.Errorf("read mark observer: %w", err)
	}
	return parseSeen(out, src, proto)
}

// parseSeen reads `nft -j list set` output. Elements are concatenations
// [addr, proto, port, mark]; proto may print as a number or a name.
func parseSeen(js string, src netip.AddrPort, ipProto uint8) ([]uint32, error) {
	var doc struct {
		Nftables []struct {
			Set *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		return nil, fmt.Errorf("parse mark observer: %w", err)
	}
	name := proto.Name(ipProto)
	var marks []uint32
	for _, o := range doc.Nftables {
		if o.Set == nil {
			continue
		}
		for _, raw := range o.Set.Elem {
			var e struct {
				Concat []any `json:"concat"`
				Elem   *struct {
					Val struct {
						Concat []any `json:"concat"`
					} `json:"val"`
				} `json:"elem"`
			}
			if json.Unmarshal(raw, &e) != nil {
				continue
			}
			c := e.Concat
			if e.Elem != nil {
				c = e.Elem.Val.Concat
			}
			if len(c) != 4 {
				continue
			}
			a, _ := c[0].(string)
			addr, err := netip.ParseAddr(a)
			if err != nil || addr != src.Addr() {
				continue
			}
			if p := fmt.Sprint(c[1]); p != name && p != fmt.Sprint(ipProto) {
				continue
			}
			if port, ok := c[2].(float64); !ok || uint16(port) != src.Port() {
				continue
			}
			if m, ok := c[3].(float64); ok {
				marks = append(marks, uint32(m))
			}
		}
	}
	return marks, nil
}
