package e2e

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
)

// nobody is the user the packaged service's privileges are tested with.
const nobody = 65534

// asNobody prefixes argv with setpriv: user and group nobody, no
// supplementary groups, no new privileges, and the given capabilities
// (e.g. "+net_admin", or none) alone in the bounding set, inheritable and
// ambient: what the systemd unit grants (User, NoNewPrivileges,
// CapabilityBoundingSet, AmbientCapabilities).
func asNobody(caps string, argv ...string) []string {
	p := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs"}
	if caps != "" {
		p = append(p, "--bounding-set=-all,"+caps, "--inh-caps="+caps, "--ambient-caps="+caps)
	} else {
		p = append(p, "--bounding-set=-all")
	}
	return append(p, argv...)
}

// nobodyDir makes a directory nobody can use, holding a copy of the
// binary under test (its build directory is root's, mode 0700) and the
// configuration yaml, and a subdirectory run/ owned by nobody for the
// control socket. It returns the directory, the binary and the file.
func nobodyDir(t *testing.T, yaml string) (dir, bin, cfg string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "qguard-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "qguard")
	copyFile(t, qguardBin, bin, 0o755)
	cfg = filepath.Join(dir, "qguard.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(run, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	return dir, bin, cfg
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// startArgv runs argv (a whole command line) in the firewall namespace and
// waits for "ready", like startDaemon.
func startArgv(t *testing.T, top *topo.Topology, control string, argv []string) *daemon {
	t.Helper()
	d := &daemon{t: t, fw: top.Firewall, log: &testutil.SyncBuffer{}, control: control, done: make(chan struct{})}
	d.start(top, argv, nil)
	return d
}

// unitCaps returns the capabilities a packaged systemd unit file
// (qguard.service or a drop-in) grants, in setpriv's form
// ("+net_admin,+bpf"), checking that the bounding set and the ambient set
// agree.
func unitCaps(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../packaging/systemd", file))
	if err != nil {
		t.Fatal(err)
	}
	sets := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if ok && (k == "AmbientCapabilities" || k == "CapabilityBoundingSet") {
			sets[k] = v
		}
	}
	amb, bound := sets["AmbientCapabilities"], sets["CapabilityBoundingSet"]
	if amb == "" || amb != bound {
		t.Fatalf("%s: AmbientCapabilities=%q, CapabilityBoundingSet=%q: want the same, non-empty", file, amb, bound)
	}
	var caps []string
	for _, c := range strings.Fields(amb) {
		caps = append(caps, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	return strings.Join(caps, ",")
}

// TestIntegrationUnprivileged: as user nobody with the packaged unit's
// capabilities (CAP_NET_ADMIN alone) the daemon starts, installs its table,
// decides traffic, answers `qguard status` and `qguard reload` from that
// user, and stops cleanly, removing its table and socket. Without the
// capability it refuses to start, naming it.
func TestIntegrationUnprivileged(t *testing.T) {
	top := newTopo(t, "qeu")
	servers(t, top)
	dir, bin, cfg := nobodyDir(t, reloadA)
	control := filepath.Join(dir, "run", "control.sock")
	hasTable := func() bool {
		t.Helper()
		out, err := top.Firewall.Output("nft", "list", "tables")
		if err != nil {
			t.Fatalf("nft list tables: %v", err)
		}
		return strings.Contains(out, "inet qguard")
	}

	caps := unitCaps(t, "qguard.service")
	if caps != "+net_admin" {
		t.Errorf("the unit grants %s; the default configuration needs CAP_NET_ADMIN alone", caps)
	}
	d := startArgv(t, top, control, asNobody(caps, bin, "run", "--config", cfg, "--control", control,
		"--log-format", "json", "--metrics", ""))
	// The daemon holds what the unit grants and nothing more.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Uid:\t65534\t65534\t65534\t65534", "CapEff:\t0000000000001000", "CapBnd:\t0000000000001000",
		"CapAmb:\t0000000000001000", "NoNewPrivs:\t1"} {
		if !strings.Contains(string(status), want+"\n") {
			t.Errorf("daemon's /proc status lacks %q:\n%s", want, status)
		}
	}
	if !hasTable() {
		t.Fatal("table inet qguard not installed")
	}
	if ping(top.Client, top.ServerIP4.String(), 1) == nil {
		t.Error("the policy drops IPv4 ping, yet it passed")
	}
	if err := ping(top.Client, top.ServerIP6.String(), 2); err != nil {
		t.Errorf("IPv6 ping should pass: %v", err)
	}
	if err := httpGet(top.Client, hostPort(top.ServerIP4, portHTTP)); err != nil {
		t.Errorf("HTTP should pass: %v", err)
	}
	out, err := top.Firewall.Output(asNobody("", bin, "status", "--control", control, "--json")...)
	if err != nil || !strings.Contains(out, `"packets"`) {
		t.Errorf("qguard status as nobody: %v\n%s", err, out)
	}
	// In kernel-first mode the kernel decides what this policy says; its
	// counters, read over netlink as nobody, are in the rule hits.
	st := d.status()
	counted := st.Queues[0].Packets + st.Default.Hits
	for _, r := range st.Rules {
		counted += r.Hits
	}
	if counted == 0 {
		t.Errorf("no packet counted: %+v %+v", st.Queues, st.Rules)
	}
	if err := os.WriteFile(cfg, []byte(reloadB), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := top.Firewall.Output(asNobody("", bin, "reload", "--control", control)...); err != nil {
		t.Errorf("qguard reload as nobody: %v\n%s", err, out)
	}
	if err := ping(top.Client, top.ServerIP4.String(), 1); err != nil {
		t.Errorf("policy B allows IPv4 ping: %v", err)
	}

	d.signal(syscall.SIGTERM)
	if err := d.wait(10 * time.Second); err != nil {
		t.Fatalf("stop: %v\n%s", err, d.log.String())
	}
	if hasTable() {
		t.Error("table left behind after SIGTERM")
	}
	if _, err := os.Lstat(control); !os.IsNotExist(err) {
		t.Errorf("control socket left behind: %v", err)
	}

	// A control socket directory nobody may write: refused, saying what to do.
	b0, _ := runFor(top.Firewall, 10*time.Second, asNobody(caps, bin, "run", "--config", cfg, "--control", filepath.Join(dir, "c.sock"),
		"--metrics", "")...)
	if !strings.Contains(b0, "permission denied (the daemon's user must be able to create the socket") {
		t.Errorf("control socket in a directory nobody cannot write:\n%s", b0)
	}

	// Without CAP_NET_ADMIN: a clear refusal, exit 1, nothing installed.
	out, code := runFor(top.Firewall, 10*time.Second, asNobody("", bin, "run", "--config", cfg, "--control", control,
		"--metrics", "")...)
	if code != 1 || !strings.Contains(out, "CAP_NET_ADMIN in this network namespace") ||
		strings.Contains(out, "goroutine ") || strings.Contains(out, "panic") {
		t.Errorf("without CAP_NET_ADMIN: exit %d, want 1 and a message naming the capability:\n%s", code, out)
	}
	if hasTable() {
		t.Error("table installed without CAP_NET_ADMIN")
	}
}

// TestIntegrationUnprivilegedXDP: the unit's capabilities do not load the
// XDP program (qguard says so and falls back to the nftables sets); with
// the xdp.conf drop-in's it attaches.
func TestIntegrationUnprivilegedXDP(t *testing.T) {
	top := newTopo(t, "qeux")
	dir, bin, cfg := nobodyDir(t, "xdp:\n  interfaces: [fw-c]\npolicy:\n  default: accept\n")
	control := filepath.Join(dir, "run", "control.sock")
	for _, c := range []struct {
		file   string
		attach bool
	}{{"qguard.service", false}, {"xdp.conf", true}} {
		caps := unitCaps(t, c.file)
		d := startArgv(t, top, control, asNobody(caps, bin, "run", "--config", cfg, "--control", control,
			"--log-format", "json", "--metrics", ""))
		out, err := top.Firewall.Output("ip", "link", "show", "fw-c")
		if err != nil {
			t.Fatal(err)
		}
		warned := strings.Contains(d.log.String(), "XDP unavailable")
		if attached := strings.Contains(out, "prog/xdp"); attached != c.attach || warned == c.attach {
			t.Errorf("%s (%s): XDP attached %v, fallback warning %v; want attached %v:\n%s\n%s",
				c.file, caps, attached, warned, c.attach, out, d.log.String())
		}
		if err := ping(top.Client, top.ServerIP4.String(), 1); err != nil {
			t.Errorf("%s: ping: %v", c.file, err)
		}
		d.signal(syscall.SIGTERM)
		if err := d.wait(10 * time.Second); err != nil {
			t.Fatalf("%s: stop: %v\n%s", c.file, err, d.log.String())
		}
		if out, _ := top.Firewall.Output("ip", "link", "show", "fw-c"); strings.Contains(out, "prog/xdp") {
			t.Errorf("%s: XDP program left attached:\n%s", c.file, out)
		}
	}
}
