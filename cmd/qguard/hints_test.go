package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qguard/qguard/internal/testutil"
)

// asNobody runs the stamped binary as user nobody with no capabilities.
func asNobody(t *testing.T, args ...string) (string, int) {
	t.Helper()
	testutil.NeedRoot(t, "to switch to user nobody")
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	argv := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", stamped(t)}, args...)
	out, err := exec.Command(setpriv, argv...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestIntegrationControlHints: status and reload say why the control socket
// cannot be used and what to do.
func TestIntegrationControlHints(t *testing.T) {
	dir, err := os.MkdirTemp("", "qguard-hint-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "control.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.Chmod(sock, 0o600)
	stale := filepath.Join(dir, "stale.sock")
	sl, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	sl.SetUnlinkOnClose(false)
	sl.Close()
	os.Chmod(stale, 0o666)
	closed := filepath.Join(dir, "closed")
	os.Mkdir(closed, 0o750)

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"status", "--control", sock}, []string{"permission denied", "the socket exists, but its owner root and mode 0600", "sudo"}},
		{[]string{"reload", "--control", sock}, []string{"permission denied", "owner root and mode 0600", "sudo"}},
		{[]string{"status", "--control", filepath.Join(closed, "control.sock")}, []string{"may not enter " + closed + " (owner root, mode 0750)", "sudo"}},
		{[]string{"status", "--control", stale}, []string{"no qguard answers", "next qguard run replaces it"}},
		{[]string{"status", "--control", filepath.Join(dir, "none.sock")}, []string{"is qguard running in this network namespace"}},
	} {
		out, code := asNobody(t, tc.args...)
		if code != 1 {
			t.Errorf("qguard %v: exit %d, want 1:\n%s", tc.args, code, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("qguard %v: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
}

// TestIntegrationRulesNeedNetAdmin: without CAP_NET_ADMIN the rules
// commands name the capability and the way to run them.
func TestIntegrationRulesNeedNetAdmin(t *testing.T) {
	for _, sub := range []string{"show", "flush"} {
		out, code := asNobody(t, "rules", sub)
		want := "qguard: rules " + sub + ": missing capability CAP_NET_ADMIN in this network namespace: nftables answers only a process with it (run as root: sudo qguard rules " + sub + "): "
		if code != 1 || !strings.HasPrefix(out, want) || !strings.Contains(out, "operation not permitted") {
			t.Errorf("rules %s as nobody: exit %d:\n%s\nwant prefix %q", sub, code, out, want)
		}
	}
}

// TestStatusSocketFromConfig: status and reload --config look where the
// daemon running that file listens.
func TestStatusSocketFromConfig(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "from-config.sock")
	cfg := filepath.Join(dir, "q.yaml")
	os.WriteFile(cfg, []byte("control:\n  socket: "+sock+"\n"), 0o600)
	for _, verb := range []string{"status", "reload"} {
		root.SetOut(&strings.Builder{})
		root.SetErr(&strings.Builder{})
		root.SetArgs([]string{verb, "--control", "", "--config", cfg}) // flags keep values between in-process runs
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), "connect to "+sock+": ") {
			t.Errorf("%s --config: %v, want a connect to %s", verb, err, sock)
		}
		root.SetArgs([]string{verb, "--control", "", "--config", filepath.Join(dir, "missing.yaml")})
		if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
			t.Errorf("%s --config missing.yaml: %v", verb, err)
		}
	}
}
