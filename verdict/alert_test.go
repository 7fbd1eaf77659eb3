package verdict

import (
	"errors"
	"strings"
	"testing"

	"github.com/qguard/qguard/verdict/packet"
)

// TestAlert: an alert rule accepts what it matches and reports what it
// would do, for the flow's first packet and its cached ones; the rules
// after it are not consulted (it decides like any rule); alert hits are
// counted apart.
func TestAlert(t *testing.T) {
	c := mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{
		{Name: "trial-ssh", Match: Match{Protos: []uint8{packet.ProtoTCP}, DstPorts: ports(PortRange{Lo: 22, Hi: 22})}, Action: ActionAlert, Log: true},
		{Name: "trial-dns", Match: Match{DNS: []string{"*.ads.example"}}, Action: ActionAlert, AlertAs: ActionReject},
		{Name: "ssh", Match: Match{Protos: []uint8{packet.ProtoTCP}, DstPorts: ports(PortRange{Lo: 22, Hi: 22})}, Action: ActionDrop},
	}})
	p := NewPipeline(c, nil)
	syn := tcp(tc4, ts4, 40000, 22, nil)
	d := decide(p, syn, nil)
	if d.Action != ActionAccept || d.Alert != ActionDrop || d.Rule != 0 || !d.Log {
		t.Errorf("first packet: %+v", d)
	}
	data := syn
	data.payload = []byte("SSH-2.0-x\r\n")
	if d = decide(p, data, nil); d.Action != ActionAccept || d.Alert != ActionDrop || !d.Cached || d.Log {
		t.Errorf("cached packet: %+v", d)
	}
	if d = decide(p, udp(tc6, ts6, 5353, 53, tDNS("x.ads.example")), nil); d.Action != ActionAccept || d.Alert != ActionReject || d.Rule != 1 {
		t.Errorf("dns: %+v", d)
	}
	if d = decide(p, udp(tc6, ts6, 5354, 53, tDNS("x.good.example")), nil); d.Alert != ActionUnset || d.Rule != RuleDefault {
		t.Errorf("no alert: %+v", d)
	}
	if st := p.Stats(); st.Alerts != 3 {
		t.Errorf("alerts %d, want 3", st.Alerts)
	}
	if tr := p.Trace(syn.raw(), nil); !strings.HasSuffix(tr.String(), "decision: accept by trial-ssh (alert: would drop)") {
		t.Errorf("trace:\n%s", tr)
	}
	// An alert-only policy does not drop what does not decode.
	c = mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{{Name: "a", Action: ActionAlert}}})
	if c.InvalidAction() != ActionAccept {
		t.Errorf("invalid %v", c.InvalidAction())
	}
}

func TestAlertErrors(t *testing.T) {
	_, err := CompileWith(&Policy{Default: ActionAlert, Invalid: ActionAlert, Rules: []Rule{
		{Name: "a", Action: ActionAlert, AlertAs: ActionAccept},
		{Name: "b", Action: ActionDrop, AlertAs: ActionDrop},
		{Name: "c", Action: ActionAlert, BlockSource: 1},
		{Name: "d", Action: ActionAccept, RateLimit: &RateLimit{Rate: Rate{1, 1}, Exceed: ActionAlert}},
	}}, testIfaces)
	for _, want := range []string{
		`policy: default: bad action: alert: expected accept, drop or reject (alert is for rules)`,
		`policy: invalid: bad action: alert`,
		`rule "a" (#0): alert_as: bad action: accept: expected drop or reject`,
		`rule "b" (#1): alert_as: conflicting rule options: alert_as goes with action: alert`,
		`rule "c" (#2): block_source: conflicting rule options`,
		`rule "d" (#3): rate_limit: bad rate limit: exceed action`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
	if !errors.Is(err, ErrBadAction) || !errors.Is(err, ErrConflict) {
		t.Error("errors.Is")
	}
}
