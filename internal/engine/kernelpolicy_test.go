package engine

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/qguard/qguard/rules"
	"github.com/qguard/qguard/verdict"
)

// TestKernelPolicy: what the kernel may decide and what it must queue,
// with the reason, and the ports a dns matcher implies.
func TestKernelPolicy(t *testing.T) {
	p := &verdict.Policy{Default: verdict.ActionReject,
		Sets: map[string][]netip.Prefix{"lab": {netip.MustParsePrefix("10.0.0.0/8")}},
		Rules: []verdict.Rule{
			{Name: "l4", Match: verdict.Match{Protos: []uint8{6}, DstPorts: []verdict.PortRange{{Lo: 22, Hi: 22}},
				SrcSets: []string{"lab"}, Src: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}, Action: verdict.ActionDrop},
			{Name: "dns", Match: verdict.Match{DNS: []string{"x.example"}}, Action: verdict.ActionDrop},
			{Name: "dns-own-port", Match: verdict.Match{DNS: []string{"x.example"}, DstPorts: []verdict.PortRange{{Lo: 5353, Hi: 5353}}}, Action: verdict.ActionDrop},
			{Name: "sni", Match: verdict.Match{SNI: []string{"x.example"}}, Action: verdict.ActionDrop},
			{Name: "ct", Match: verdict.Match{CT: verdict.CTStateNew}, Action: verdict.ActionDrop},
			{Name: "mark", Match: verdict.Match{Mark: &verdict.MarkMatch{Value: 1, Mask: 1}}, Action: verdict.ActionDrop},
			{Name: "limited", RateLimit: &verdict.RateLimit{}, Action: verdict.ActionAccept},
			{Name: "blocks", BlockSource: 1, Action: verdict.ActionDrop},
			{Name: "flow", Flow: true, Action: verdict.ActionAccept},
			{Name: "marks", SetMark: true, Mark: 4, Action: verdict.ActionAccept},
			{Name: "logs", Log: true, Action: verdict.ActionAccept},
			{Name: "alerts", Action: verdict.ActionAlert},
			{Name: "mapped", Match: verdict.Match{Dst: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.1/128")}}, Action: verdict.ActionAccept},
			{Name: "wg", Match: verdict.Match{InIfaces: []string{"wg0"}}, Action: verdict.ActionDrop},
			{Name: "tunnels", Match: verdict.Match{OutIfaces: []string{"wg0", "tun*"}}, Action: verdict.ActionDrop},
			{Name: "owner", Match: verdict.Match{UIDs: []verdict.IDRange{{Lo: 1000, Hi: 1999}}}, Action: verdict.ActionReject},
		}}
	k := kernelPolicy(p, &kernelOpts{logRate: 10})
	if k.Default != rules.ActionReject || len(k.Rules) != len(p.Rules) {
		t.Fatalf("%+v", k)
	}
	want := map[string]string{
		"l4": "", "dns": "dns matcher", "dns-own-port": "dns matcher", "sni": "sni matcher",
		"ct": "ct matcher", "mark": "mark matcher", "limited": "rate_limit", "blocks": "",
		"flow": "flow option", "marks": "mark option", "logs": "", "alerts": "alert action",
		"mapped": "IPv4-mapped", "owner": "", "wg": "", "tunnels": "interface name pattern",
	}
	for _, r := range k.Rules {
		w := want[r.Name]
		if w == "" && r.Queue != "" || w != "" && !strings.HasPrefix(r.Queue, w) {
			t.Errorf("rule %s: queue reason %q, want %q", r.Name, r.Queue, w)
		}
	}
	if r := k.Rules[7]; r.Name != "blocks" || r.BlockSource != 1 {
		t.Errorf("blocks: %+v", r)
	}
	if r := k.Rules[10]; r.Name != "logs" || !r.Log {
		t.Errorf("logs: %+v", r)
	}
	// With XDP, block_source stays in user space (the XDP map); with
	// decision logging off, the kernel logs nothing either.
	k2 := kernelPolicy(p, &kernelOpts{xdp: true})
	if r := k2.Rules[7]; !strings.HasPrefix(r.Queue, "block_source with xdp") || r.BlockSource != 0 {
		t.Errorf("blocks with xdp: %+v", r)
	}
	if r := k2.Rules[10]; r.Queue != "" || r.Log {
		t.Errorf("logs with logging off: %+v", r)
	}
	l4 := k.Rules[0]
	if !l4.HasSrc || len(l4.Src) != 2 || l4.Action != rules.ActionDrop || len(l4.DPorts) != 1 || l4.DPorts[0] != (rules.PortRange{Lo: 22, Hi: 22}) {
		t.Errorf("l4: %+v", l4)
	}
	if d := k.Rules[1].DPorts; len(d) != 1 || d[0] != (rules.PortRange{Lo: 53, Hi: 53}) {
		t.Errorf("dns implies %v, want port 53", d)
	}
	if d := k.Rules[2].DPorts; len(d) != 1 || d[0].Lo != 5353 {
		t.Errorf("dns with its own port: %v", d)
	}
	if u := k.Rules[len(k.Rules)-1].UIDs; len(u) != 1 || u[0] != (rules.IDRange{First: 1000, Last: 1999}) {
		t.Errorf("owner: %v", u)
	}
}
