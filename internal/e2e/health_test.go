package e2e

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
)

// getIn fetches url from inside ns: status code and body.
func getIn(t *testing.T, ns topo.NS, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: nsDialer(ns), DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestIntegrationHealth: /healthz answers while the process is up; /readyz
// is 200 once the queues are bound and the rules installed, 503 with the
// reason while the table is not as qguard installed it (rules.guard off,
// so it stays that way).
func TestIntegrationHealth(t *testing.T) {
	top := newTopo(t, "qeh")
	d := startDaemon(t, top, "metrics: {listen: \"127.0.0.1:9477\"}\nrules: {guard: false}\n")
	fw := top.Firewall
	base := "http://127.0.0.1:9477"
	if c, b := getIn(t, fw, base+"/healthz"); c != 200 || b != "ok\n" {
		t.Errorf("/healthz: %d %q", c, b)
	}
	if c, b := getIn(t, fw, base+"/readyz"); c != 200 || b != "ready\n" {
		t.Errorf("/readyz while running: %d %q", c, b)
	}

	// Someone deletes the steering rule.
	deleteSteerRule(t, fw)
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, b := getIn(t, fw, base+"/readyz")
		if c == 503 && strings.Contains(b, "nftables table not as qguard installed it") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz 3s after the steering rule was deleted: %d %q", c, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c, _ := getIn(t, fw, base+"/healthz"); c != 200 {
		t.Errorf("/healthz with the table changed: %d (the process is up)", c)
	}
	d.signal(syscall.SIGTERM)
	if err := d.wait(10 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// TestIntegrationHealthNoRules: with --no-rules (someone else steers) bound
// queues are all /readyz asks for.
func TestIntegrationHealthNoRules(t *testing.T) {
	top := newTopo(t, "qen")
	startDaemon(t, top, "metrics: {listen: \"127.0.0.1:9477\"}\n", "--no-rules")
	if c, b := getIn(t, top.Firewall, "http://127.0.0.1:9477/readyz"); c != 200 || b != "ready\n" {
		t.Errorf("/readyz with --no-rules: %d %q", c, b)
	}
}

// TestIntegrationBuildInfoMetric: qguard_build_info carries the version and
// commit stamped at link time, the way `make build` stamps them.
func TestIntegrationBuildInfoMetric(t *testing.T) {
	top := newTopo(t, "qeb")
	bin := filepath.Join(t.TempDir(), "qguard")
	const version, commit = "v1.2.3-4-gabcdef0", "abcdef0123456789abcdef0123456789abcdef01"
	ld := "-X github.com/qguard/qguard/internal/service.version=" + version +
		" -X github.com/qguard/qguard/internal/service.commit=" + commit
	if out, err := exec.Command("go", "build", "-ldflags", ld, "-o", bin, "github.com/qguard/qguard/cmd/qguard").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	log := &testutil.SyncBuffer{}
	c := top.Firewall.Command(context.Background(), bin, "run", "--control", filepath.Join(t.TempDir(), "c.sock"), "--metrics", "127.0.0.1:9477")
	c.Stdout, c.Stderr = log, log
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		c.Process.Signal(syscall.SIGTERM)
		c.Wait()
	}()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(log.String(), "msg=ready"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 10s:\n%s", log.String())
		}
	}
	m := scrape(t, top.Firewall, "127.0.0.1:9477")
	want := `qguard_build_info{commit="` + commit + `",go_version="` + runtime.Version() + `",version="` + version + `"}`
	if v, ok := m[want]; !ok || v != 1 {
		t.Errorf("no %s 1 in the metrics", want)
		for k := range m {
			if strings.HasPrefix(k, "qguard_build_info") {
				t.Logf("have %s", k)
			}
		}
	}
}
