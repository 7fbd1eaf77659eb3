package ruletest

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
)

func runFiles(t *testing.T, prefix string, paths ...string) (*Report, string) {
	t.Helper()
	files, err := ParseAll(paths)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep := Run(context.Background(), files, &Options{Prefix: prefix, OnCase: func(c CaseResult) { WriteCase(&out, c) }})
	for _, f := range rep.Files {
		if f.Error != "" {
			t.Fatalf("%s: %s\n%s", f.Path, f.Error, out.String())
		}
	}
	return rep, out.String()
}

// TestIntegrationWrongExpectation is the test of the tester: a fixture
// whose expectation is wrong must fail, naming the case and the rule that
// matched.
func TestIntegrationWrongExpectation(t *testing.T) {
	testutil.NeedRoot(t, "namespaces, nftables")
	rep, out := runFiles(t, "qgrw", "testdata/wrong.yaml", "testdata/wrongrule.yaml")
	if rep.Passed != 1 || rep.Failed != 3 || rep.Summary() != "1 passed, 3 failed" {
		t.Fatalf("%s\n%s", rep.Summary(), out)
	}
	for _, want := range []string{
		"FAIL testdata/wrong.yaml:14 telnet wrongly expected to pass (rejected, rule block-telnet",
		"expected delivered, got rejected",
		"matched:  rule block-telnet",
		`rule "block-telnet" (#0): match`,
		"FAIL testdata/wrongrule.yaml:13 dns dropped by the wrong rule",
		"expected rule drop-udp to match, but rule drop-dns matched",
		"FAIL testdata/wrongrule.yaml:17 dns hit count is off (dropped, rule drop-dns",
		"metrics: hits changed by 1, expected == 5",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func rootState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, argv := range [][]string{{"ip", "-o", "link", "show"}, {"nft", "list", "tables"}} {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v %s", argv, err, out)
		}
		b.Write(out)
	}
	return b.String()
}

func netnsList(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v %s", err, out)
	}
	var found []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, prefix) {
			found = append(found, l)
		}
	}
	return found
}

// TestIntegrationNoLeftovers runs a file twice in a row, and once more
// interrupted, and checks that no namespace, link or table is left.
func TestIntegrationNoLeftovers(t *testing.T) {
	testutil.NeedRoot(t, "namespaces, nftables")
	prefix := testutil.ProcessPrefix("qgrl")
	before := rootState(t)
	for i := 0; i < 2; i++ {
		rep, out := runFiles(t, prefix, "testdata/wrong.yaml")
		if rep.Passed != 1 || rep.Failed != 1 {
			t.Fatalf("run %d: %s\n%s", i, rep.Summary(), out)
		}
		if left, err := topo.Leftovers(prefix); err != nil || len(left) > 0 {
			t.Fatalf("run %d left namespaces: %v %v", i, left, err)
		}
		if l := netnsList(t, prefix); len(l) > 0 {
			t.Fatalf("run %d: ip netns list shows %v", i, l)
		}
	}
	// Interrupted in the middle of a case that waits for a timeout.
	files, err := ParseAll([]string{"../../examples/tests/l7.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, 100)
	go func() {
		<-started
		cancel()
	}()
	rep := Run(ctx, files, &Options{Prefix: prefix, OnCase: func(CaseResult) { started <- struct{}{} }})
	if rep.Failed == 0 {
		t.Errorf("an interrupted run passed every case: %s", rep.Summary())
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatal("not cancelled")
	}
	if left, err := topo.Leftovers(prefix); err != nil || len(left) > 0 {
		t.Fatalf("interrupted run left namespaces: %v %v", left, err)
	}
	time.Sleep(50 * time.Millisecond)
	if after := rootState(t); after != before {
		t.Errorf("root namespace links or tables changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
