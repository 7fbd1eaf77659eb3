package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/engine"
	"github.com/qguard/qguard/internal/service"
	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
)

// qguardBin is the binary under test, built once by TestMain.
var qguardBin string

func TestMain(m *testing.M) {
	if !testutil.IsRoot() {
		os.Exit(m.Run()) // every test skips
	}
	if b := os.Getenv("QGUARD_BIN"); b != "" {
		// A prebuilt binary, e.g. one built with -race or -cover.
		qguardBin = b
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "qguard-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	qguardBin = filepath.Join(dir, "qguard")
	out, err := exec.Command("go", "build", "-o", qguardBin, "github.com/qguard/qguard/cmd/qguard").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build qguard: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newTopo builds client -> firewall -> server and removes it at the end.
func newTopo(t *testing.T, prefix string) *topo.Topology {
	t.Helper()
	testutil.NeedRoot(t, "namespaces, nftables, NFQUEUE")
	return buildTopo(t, &topo.Options{Prefix: prefix})
}

func buildTopo(t *testing.T, o *topo.Options) *topo.Topology {
	t.Helper()
	top, err := topo.NewTopology(o)
	if err != nil {
		t.Fatalf("build topology: %v", err)
	}
	t.Cleanup(func() {
		if err := top.Close(); err != nil {
			t.Errorf("remove topology: %v", err)
		}
	})
	warmUp(t, top)
	return top
}

// warmUp resolves the neighbours on both sides before any daemon runs.
// Neighbour resolution holds the first packets to a neighbour and releases
// them as one burst. Packets of one new conntrack entry queued together are
// a known kernel race: conntrack confirms the first and drops the others
// (insert_failed; only UDP has clash resolution), seen here as lost echo
// requests. It is not what
// these tests are about, and exact packet counts need a quiet start.
func warmUp(t *testing.T, top *topo.Topology) {
	t.Helper()
	for _, ip := range []string{top.ServerIP4.String(), top.ServerIP6.String()} {
		if _, err := top.Client.Output("ping", "-n", "-q", "-c", "1", "-W", "3", ip); err != nil {
			t.Fatalf("warm-up ping %s without firewall: %v", ip, err)
		}
	}
}

// daemon is one `qguard run` in the firewall namespace.
type daemon struct {
	t       *testing.T
	fw      topo.NS
	cmd     *exec.Cmd
	log     *testutil.SyncBuffer
	cfgPath string
	control string
	done    chan struct{}
	waitErr error
}

// startDaemon runs qguard with the configuration yaml ("" for the embedded
// default) and waits until it reports ready. The daemon is killed at the end
// of the test if still running.
func startDaemon(t *testing.T, top *topo.Topology, yaml string, args ...string) *daemon {
	t.Helper()
	return startDaemonEnv(t, top, nil, yaml, args...)
}

// startDaemonEnv is startDaemon with extra environment variables.
func startDaemonEnv(t *testing.T, top *topo.Topology, env []string, yaml string, args ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	d := &daemon{t: t, fw: top.Firewall, log: &testutil.SyncBuffer{}, control: filepath.Join(dir, "control.sock"), done: make(chan struct{})}
	argv := []string{qguardBin, "run", "--control", d.control, "--log-format", "json", "--log-level", "debug"}
	if yaml != "" {
		d.cfgPath = filepath.Join(dir, "qguard.yaml")
		d.writeConfig(yaml)
		argv = append(argv, "--config", d.cfgPath)
	}
	d.start(top, append(argv, args...), env)
	return d
}

// start runs argv (a whole command line, qguard or a wrapper such as
// setpriv running it) in the firewall namespace with env added, and waits
// until the daemon reports ready. It is killed at the end of the test if
// still running.
func (d *daemon) start(top *topo.Topology, argv, env []string) {
	t := d.t
	t.Helper()
	d.cmd = top.Firewall.Command(context.Background(), argv...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if env != nil {
		d.cmd.Env = append(os.Environ(), env...)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("qguard log:\n%s", d.log.String())
		}
	})
	deadline := time.After(10 * time.Second)
	for !strings.Contains(d.log.String(), `"msg":"ready"`) {
		select {
		case <-d.done:
			t.Fatalf("qguard exited before ready: %v\n%s", d.waitErr, d.log.String())
		case <-deadline:
			t.Fatalf("qguard not ready after 10s:\n%s", d.log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (d *daemon) writeConfig(yaml string) {
	d.t.Helper()
	if err := os.WriteFile(d.cfgPath, []byte(yaml), 0o600); err != nil {
		d.t.Fatal(err)
	}
}

func (d *daemon) signal(s syscall.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(s); err != nil {
		d.t.Fatalf("signal %v: %v", s, err)
	}
}

// wait waits for the daemon to exit and returns its exit error.
func (d *daemon) wait(timeout time.Duration) error {
	d.t.Helper()
	select {
	case <-d.done:
		return d.waitErr
	case <-time.After(timeout):
		d.t.Fatalf("qguard still running after %v:\n%s", timeout, d.log.String())
		return nil
	}
}

// reload sends SIGHUP and waits for the daemon to log the outcome (the
// n-th "reloaded" or "reload failed" line).
func (d *daemon) reload() (ok bool) {
	d.t.Helper()
	before := d.reloadLines()
	d.signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if d.reloadLines() > before {
			return !d.lastReloadFailed()
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.t.Fatalf("no reload outcome logged:\n%s", d.log.String())
	return false
}

func (d *daemon) reloadLines() int {
	s := d.log.String()
	return strings.Count(s, `"msg":"reloaded"`) + strings.Count(s, `"msg":"reload failed`)
}

func (d *daemon) lastReloadFailed() bool {
	s := d.log.String()
	return strings.LastIndex(s, `"msg":"reload failed`) > strings.LastIndex(s, `"msg":"reloaded"`)
}

// status asks the daemon for its counters over the control socket.
func (d *daemon) status() *engine.Stats {
	d.t.Helper()
	r, err := service.Call(d.control, "status", 5*time.Second)
	if err != nil || !r.OK {
		d.t.Fatalf("status: %v %+v", err, r)
	}
	return r.Status
}

// scrape reads the metrics endpoint from inside the firewall namespace and
// returns the samples by "name{labels}".
func scrape(t *testing.T, fw topo.NS, addr string) map[string]float64 {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: nsDialer(fw)}}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// nsDialer dials from inside ns, whatever goroutine the caller runs on.
func nsDialer(ns topo.NS) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = ns.Do(func() error {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

func dialIn(ns topo.NS, network, addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return nsDialer(ns)(ctx, network, addr)
}

// listenIn listens on addr inside ns until t ends.
func listenIn(t *testing.T, ns topo.NS, network, addr string) net.Listener {
	t.Helper()
	return openIn(t, ns, network, addr, net.Listen)
}

// listenPacketIn opens a packet socket on addr inside ns until t ends.
func listenPacketIn(t *testing.T, ns topo.NS, network, addr string) net.PacketConn {
	t.Helper()
	return openIn(t, ns, network, addr, net.ListenPacket)
}

func openIn[C io.Closer](t *testing.T, ns topo.NS, network, addr string, open func(network, addr string) (C, error)) C {
	t.Helper()
	var c C
	if err := ns.Do(func() (err error) {
		c, err = open(network, addr)
		return err
	}); err != nil {
		t.Fatalf("listen %s %s in %s: %v", network, addr, ns.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ping sends count echo requests from ns to dst and reports whether all
// were answered.
func ping(ns topo.NS, dst string, count int) error {
	_, err := ns.Output("ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.05", "-W", "1", dst)
	return err
}

// noTable fails t if the firewall namespace fw holds a qguard table.
func noTable(t *testing.T, fw topo.NS, when string) {
	t.Helper()
	if out, err := fw.Output("nft", "list", "tables"); err != nil || strings.Contains(out, "qguard") {
		t.Errorf("%s: table left behind: %q %v", when, out, err)
	}
}

// runFor runs argv in ns, killed after d, and returns its combined output
// and exit code (-1 when it did not exit by itself).
func runFor(ns topo.NS, d time.Duration, argv ...string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	out, err := ns.Command(ctx, argv...).CombinedOutput()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(interface{ ExitCode() int }); ok {
			code = ee.ExitCode()
		}
	}
	return string(out), code
}

// deleteSteerRule deletes the steering rule from qguard's table in fw, in
// whichever chain holds it, as someone else would.
func deleteSteerRule(t *testing.T, fw topo.NS) {
	t.Helper()
	out, err := fw.Output("nft", "-a", "list", "table", "inet", "qguard")
	if err != nil {
		t.Fatal(err)
	}
	chain, handle := "", ""
	chainRe, handleRe := regexp.MustCompile(`^\s*chain (\S+) \{`), regexp.MustCompile(`steer to queue.*# handle (\d+)`)
	for _, line := range strings.Split(out, "\n") {
		if m := chainRe.FindStringSubmatch(line); m != nil {
			chain = m[1]
		}
		if m := handleRe.FindStringSubmatch(line); m != nil {
			handle = m[1]
			break
		}
	}
	if handle == "" {
		t.Fatalf("no steering rule handle in:\n%s", out)
	}
	if err := fw.Run("nft", "delete", "rule", "inet", "qguard", chain, "handle", handle); err != nil {
		t.Fatal(err)
	}
}

// hostPort joins an address and a port, bracketing IPv6.
func hostPort(ip fmt.Stringer, port int) string {
	return net.JoinHostPort(ip.String(), strconv.Itoa(port))
}

// jsonLines decodes the daemon's log lines whose msg is msg.
func jsonLines(log, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(log, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

const (
	extraClient4 = "198.18.1.3"
	extraClient6 = "2001:db8:1::3"
)

// newTopoExtra is newTopo with extraClient4 and extraClient6 on the client.
func newTopoExtra(t *testing.T, prefix string) *topo.Topology {
	t.Helper()
	testutil.NeedRoot(t, "namespaces, nftables, NFQUEUE")
	top := buildTopo(t, &topo.Options{Prefix: prefix, ExtraClientAddrs: []netip.Addr{
		netip.MustParseAddr(extraClient4), netip.MustParseAddr(extraClient6)}})
	// Deprecate the extra IPv6 address so the kernel does not pick it as the
	// source of ordinary connections (the newest address would win).
	if err := top.Client.Run("ip", "-6", "addr", "change", extraClient6+"/64", "dev", top.ClientLink, "preferred_lft", "0"); err != nil {
		t.Fatal(err)
	}
	return top
}

func netipOf(s fmt.Stringer) netip.Addr { return netip.MustParseAddr(s.String()) }

// serverFor returns the server address of src's family.
func serverFor(top *topo.Topology, src string) netip.Addr {
	if netip.MustParseAddr(src).Is4() {
		return top.ServerIP4
	}
	return top.ServerIP6
}

// dialFrom connects from src (an address of ns) to addr and exchanges one
// echo.
func dialFrom(ns topo.NS, src, addr string) error {
	return dialFromTimeout(ns, src, addr, 700*time.Millisecond)
}

// echo writes msg on c and reads it back within a second.
func echo(c net.Conn, msg string) error {
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo: got %q, want %q", buf, msg)
	}
	return nil
}
