package ruletest

import (
	"bytes"
	"context"
	"encoding/xml"
	"net/netip"
	"strings"
	"testing"

	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
)

// nftFirewall stands in for qguard: plain nftables rules decide, so the
// runner's orchestration is tested apart from the engine.
type nftFirewall struct{ counters map[string]uint64 }

func (n *nftFirewall) Counters() map[string]uint64 { return n.counters }
func (n *nftFirewall) Explain(netip.AddrPort, netip.AddrPort, uint8) (string, string) {
	return "", "no trace: nftables stand-in"
}
func (n *nftFirewall) Logged(netip.AddrPort, uint8) []string { return nil }
func (n *nftFirewall) MarkMask() uint32                      { return defaultMarkMask }
func (n *nftFirewall) Close() error                          { return nil }

func startNFT(ctx context.Context, t *topo.Topology, f *File) (firewall, error) {
	cmd := t.Firewall.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(probeRules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, &PosError{File: "probeRules", Msg: err.Error() + string(out)}
	}
	return &nftFirewall{counters: map[string]uint64{"packets": 0}}, nil
}

const runnerFile = `policy:
  default: accept
cases:
  - {name: tcp delivered, send: {tcp: {port: 1000}}, expect: delivered}
  - {name: tcp dropped v6, send: {tcp: {port: 2000}}, family: 6, expect: dropped}
  - {name: tcp rejected, send: {tcp: {port: 2001}}, expect: rejected}
  - {name: marked, send: {tcp: {port: 2005}}, expect: modified, mark: 0x42}
  - {name: icmp rejected from extra, send: ping, from: 198.18.1.20, expect: rejected}
  - {name: wrong expectation, send: {udp: {port: 2004}}, expect: delivered}
`

func TestIntegrationRunnerStandIn(t *testing.T) {
	testutil.NeedRoot(t, "namespaces, nftables")
	f, err := Parse("runner.yaml", []byte(runnerFile))
	if err != nil {
		t.Fatal(err)
	}
	var lines bytes.Buffer
	rep := Run(context.Background(), []*File{f, f}, &Options{Prefix: testutil.ProcessPrefix("qgrr"), firewall: startNFT,
		OnCase: func(c CaseResult) { WriteCase(&lines, c) }})
	if rep.Passed != 10 || rep.Failed != 2 {
		t.Fatalf("%s\n%s", rep.Summary(), lines.String())
	}
	for _, fr := range rep.Files {
		last := fr.Cases[len(fr.Cases)-1]
		if last.Passed || last.Name != "wrong expectation" || !strings.Contains(last.Failures[0], "expected delivered, got dropped") {
			t.Errorf("wrong expectation case: %+v", last)
		}
	}
	if !strings.Contains(lines.String(), "FAIL runner.yaml:9 wrong expectation") {
		t.Errorf("output:\n%s", lines.String())
	}
	var x bytes.Buffer
	if err := WriteJUnit(&x, rep); err != nil {
		t.Fatal(err)
	}
	var js junitSuites
	if err := xml.Unmarshal(x.Bytes(), &js); err != nil || js.Tests != 12 || js.Failures != 2 {
		t.Errorf("junit: %v %+v\n%s", err, js, x.String())
	}
	left, err := topo.Leftovers(testutil.ProcessPrefix("qgrr"))
	if err != nil || len(left) > 0 {
		t.Errorf("left behind: %v %v", left, err)
	}
}

// TestRunCancelled: a run cancelled before a file starts reports every case
// of it, each under its own name and line, as a setup failure saying why,
// and tells OnCase of each.
func TestRunCancelled(t *testing.T) {
	f, err := Parse("cancelled.yaml", []byte(runnerFile))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var told []CaseResult
	rep := Run(ctx, []*File{f}, &Options{OnCase: func(c CaseResult) { told = append(told, c) }})
	if len(rep.Files) != 1 || !strings.Contains(rep.Files[0].Error, "not run: context canceled") {
		t.Fatalf("report %+v", rep)
	}
	got := rep.Files[0].Cases
	if len(got) != len(f.Cases) || len(told) != len(f.Cases) {
		t.Fatalf("%d cases reported, %d told, want %d", len(got), len(told), len(f.Cases))
	}
	for i, c := range got {
		want := &f.Cases[i]
		if c.File != "cancelled.yaml" || c.Line != want.Line || c.Name != want.Name || c.Expected != want.Expect.String() ||
			c.Outcome != Errored.String() || c.Passed || c.Detail != "file setup failed" ||
			len(c.Failures) != 1 || c.Failures[0] != "setup: not run: context canceled" {
			t.Errorf("case %d: %+v", i, c)
		}
		if told[i].Name != c.Name {
			t.Errorf("OnCase %d told %q, reported %q", i, told[i].Name, c.Name)
		}
	}
}
