package xdp

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
)

// lab is a client -> firewall -> server topology with nft counters in the
// firewall's forward chain: whatever XDP drops on fw-c never reaches them.
type lab struct {
	t testing.TB
	*topo.Topology
}

const labTable = "qgxdptest"

// labCounters count forwarded packets per source and per UDP port.
var labCounters = map[string]string{
	"blocked4": "ip saddr 198.18.1.2",
	"blocked6": "ip6 saddr 2001:db8:1::2",
	"other4":   "ip saddr 198.18.1.3",
	"other6":   "ip6 saddr 2001:db8:1::3",
	"udp5001":  "udp dport 5001",
	"udp5002":  "udp dport 5002",
}

func newLab(t testing.TB) *lab {
	t.Helper()
	testutil.NeedRoot(t, "to load BPF programs")
	tp := testutil.NewTopology(t, &topo.Options{Prefix: "qx", ExtraClientAddrs: []netip.Addr{alt4, alt6}})
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", labTable)
	for name := range labCounters {
		fmt.Fprintf(&b, "  counter %s {}\n", name)
	}
	b.WriteString("  chain forward {\n    type filter hook forward priority 0; policy accept;\n")
	for name, match := range labCounters {
		fmt.Fprintf(&b, "    %s counter name %s\n", match, name)
	}
	b.WriteString("  }\n}\n")
	file := t.TempDir() + "/lab.nft"
	must(t, os.WriteFile(file, []byte(b.String()), 0o600))
	must(t, tp.Firewall.Run("nft", "-f", file))
	l := &lab{t: t, Topology: tp}
	// Warm up: neighbours resolved both ways, so later failures can only
	// be drops (NDP from a blocked IPv6 source is dropped too).
	for _, p := range [][2]netip.Addr{{cli4, srv4}, {cli6, srv6}, {alt4, srv4}, {alt6, srv6}} {
		if err := l.ping(p[0], p[1], "2"); err != nil {
			t.Fatalf("warm-up ping %v -> %v: %v", p[0], p[1], err)
		}
	}
	return l
}

func (l *lab) attach(cfg *Config) (*Filter, error) {
	var f *Filter
	err := l.Firewall.Do(func() (err error) {
		f, err = Attach(cfg)
		return err
	})
	if f != nil {
		l.t.Cleanup(func() { _ = f.Close() })
	}
	return f, err
}

// ping sends one echo request from src (an address on the client) and
// waits wait seconds for the reply.
func (l *lab) ping(src, dst netip.Addr, wait string) error {
	argv := []string{"ping", "-n", "-q", "-c", "1", "-W", wait, "-I", src.String(), dst.String()}
	if src.Is6() {
		argv = append(argv[:1], append([]string{"-6"}, argv[1:]...)...)
	}
	return l.Client.Run(argv...)
}

var packetsRE = regexp.MustCompile(`packets (\d+)`)

// counter reads a named nft counter in the firewall namespace.
func (l *lab) counter(name string) uint64 {
	l.t.Helper()
	out, err := l.Firewall.Output("nft", "list", "counter", "inet", labTable, name)
	if err != nil {
		l.t.Fatal(err)
	}
	m := packetsRE.FindStringSubmatch(out)
	if m == nil {
		l.t.Fatalf("counter %s: no packet count in %q", name, out)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

func (l *lab) counters() map[string]uint64 {
	m := make(map[string]uint64, len(labCounters))
	for name := range labCounters {
		m[name] = l.counter(name)
	}
	return m
}

// linkXDP returns the XDP part of `ip -d link show fw-c`, or "".
func (l *lab) linkXDP() string {
	l.t.Helper()
	out, err := l.Firewall.Output("ip", "-d", "link", "show", l.FwClientLink)
	if err != nil {
		l.t.Fatal(err)
	}
	return regexp.MustCompile(`(?m)\bxdp\S*.*$|prog/xdp.*$`).FindString(out)
}

// udp sends n datagrams from src to dst and returns how many the server
// received.
func (l *lab) udp(src, dst netip.AddrPort, n int) int {
	l.t.Helper()
	var srv, cli *net.UDPConn
	must(l.t, l.Server.Do(func() (err error) {
		srv, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(dst))
		return err
	}))
	defer srv.Close()
	must(l.t, l.Client.Do(func() (err error) {
		cli, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(src), net.UDPAddrFromAddrPort(dst))
		return err
	}))
	defer cli.Close()
	for range n {
		if _, err := cli.Write([]byte("qguard xdp test")); err != nil {
			l.t.Fatal(err)
		}
	}
	got := 0
	buf := make([]byte, 64)
	for got < n {
		_ = srv.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := srv.Read(buf); err != nil {
			break
		}
		got++
	}
	return got
}

func hitsOf(t *testing.T, f *Filter, kind Kind, src netip.Addr) uint64 {
	t.Helper()
	entries, err := f.Entries()
	must(t, err)
	for _, e := range entries {
		if e.Kind == kind && e.Src.Addr() == src {
			return e.Hits
		}
	}
	t.Fatalf("no %s entry for %v in %+v", kind, src, entries)
	return 0
}

func TestIntegrationBlockInNamespace(t *testing.T) {
	l := newLab(t)
	f, err := l.attach(&Config{Interfaces: []string{l.FwClientLink}, ExpireInterval: -1})
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Logf("attached: %v (fallback: %q)", f.Attachments(), f.Attachments()[0].Fallback)
	if l.linkXDP() == "" {
		t.Fatal("ip -d link show fw-c shows no XDP program after Attach")
	}

	// Source blocks, IPv4 and IPv6: the XDP hit counters rise, the
	// firewall's forward chain sees nothing, other sources pass.
	must(t, f.BlockSource(cli4, 0))
	must(t, f.BlockSource(cli6, 0))
	before := l.counters()
	for _, p := range [][2]netip.Addr{{cli4, srv4}, {cli6, srv6}} {
		if err := l.ping(p[0], p[1], "0.5"); err == nil {
			t.Errorf("ping from blocked %v got through", p[0])
		}
	}
	for _, p := range [][2]netip.Addr{{alt4, srv4}, {alt6, srv6}} {
		if err := l.ping(p[0], p[1], "2"); err != nil {
			t.Errorf("ping from unblocked %v: %v", p[0], err)
		}
	}
	after := l.counters()
	for name, want := range map[string]bool{"blocked4": false, "blocked6": false, "other4": true, "other6": true} {
		if rose := after[name] > before[name]; rose != want {
			t.Errorf("nft counter %s went %d -> %d; want rising=%v", name, before[name], after[name], want)
		}
	}
	if h := hitsOf(t, f, KindSource, cli4); h == 0 {
		t.Errorf("no XDP hits on the %v entry", cli4)
	}
	if h := hitsOf(t, f, KindSource, cli6); h == 0 {
		t.Errorf("no XDP hits on the %v entry", cli6)
	}
	if s := f.Stats(); s.DroppedSource < 2 || s.Passed == 0 {
		t.Errorf("stats %+v: want >= 2 source drops and some passes", s)
	}
	must(t, f.UnblockSource(cli4))
	must(t, f.UnblockSource(cli6))

	// Flow blocks: one UDP 5-tuple per family, the next port is unaffected.
	for _, c := range [][2]netip.Addr{{alt4, srv4}, {alt6, srv6}} {
		blocked, other := ap(c[1], 5001), ap(c[1], 5002)
		must(t, f.BlockFlow(ProtoUDP, ap(c[0], 40000), blocked, 0))
		before := l.counters()
		if got := l.udp(ap(c[0], 40000), blocked, 5); got != 0 {
			t.Errorf("%d of 5 datagrams of the blocked flow %v -> %v arrived", got, c[0], blocked)
		}
		if got := l.udp(ap(c[0], 40000), other, 5); got != 5 {
			t.Errorf("%d of 5 datagrams to %v arrived, want 5", got, other)
		}
		after := l.counters()
		if after["udp5001"] != before["udp5001"] || after["udp5002"] < before["udp5002"]+5 {
			t.Errorf("nft udp counters 5001: %d -> %d, 5002: %d -> %d", before["udp5001"], after["udp5001"], before["udp5002"], after["udp5002"])
		}
		if h := hitsOf(t, f, KindFlow, c[0]); h != 5 {
			t.Errorf("flow entry hits %d, want 5", h)
		}
	}

	// Expiry: the kernel ignores an entry past its deadline; Expire then
	// deletes it.
	must(t, f.BlockSource(cli4, 400*time.Millisecond))
	if err := l.ping(cli4, srv4, "0.2"); err == nil {
		t.Error("ping got through a fresh 400ms block")
	}
	time.Sleep(450 * time.Millisecond)
	if err := l.ping(cli4, srv4, "2"); err != nil {
		t.Errorf("ping after the block's ttl (before Expire): %v", err)
	}
	if n, err := f.Expire(time.Now()); err != nil || n != 1 {
		t.Errorf("Expire: %d, %v; want 1 entry deleted", n, err)
	}

	// Close detaches: nothing left on the link, traffic still flows.
	must(t, f.BlockSource(cli4, 0))
	must(t, f.Close())
	if x := l.linkXDP(); x != "" {
		t.Errorf("after Close fw-c still shows %q", x)
	}
	if len(f.Attachments()) != 0 {
		t.Errorf("Attachments after Close: %v", f.Attachments())
	}
	if err := l.ping(cli4, srv4, "2"); err != nil {
		t.Errorf("ping after Close: %v", err)
	}
}

// TestIntegrationModes attaches explicitly in each mode. veth has native
// XDP since Linux 4.19 and bpf_link XDP needs 5.9, so on this project's
// kernels both modes must work: no skip.
func TestIntegrationModes(t *testing.T) {
	l := newLab(t)
	for _, c := range []struct {
		mode Mode
		ip   string // what `ip -d link` prints
	}{{ModeNative, "prog/xdp"}, {ModeGeneric, "xdpgeneric"}} {
		f, err := l.attach(&Config{Interfaces: []string{l.FwClientLink}, Mode: c.mode})
		if err != nil {
			t.Fatalf("Attach %s: %v", c.mode, err)
		}
		if a := f.Attachments(); len(a) != 1 || a[0].Mode != c.mode || a[0].Interface != l.FwClientLink {
			t.Errorf("%s: attachments %v", c.mode, a)
		}
		out, _ := l.Firewall.Output("ip", "-d", "link", "show", l.FwClientLink)
		if !strings.Contains(out, c.ip) {
			t.Errorf("%s: ip -d link shows no %q:\n%s", c.mode, c.ip, out)
		}
		must(t, f.BlockSource(cli4, 0))
		if err := l.ping(cli4, srv4, "0.3"); err == nil {
			t.Errorf("%s: ping from a blocked source got through", c.mode)
		}
		if s := f.Stats(); s.DroppedSource == 0 {
			t.Errorf("%s: no drops counted", c.mode)
		}
		must(t, f.Close())
		if x := l.linkXDP(); x != "" {
			t.Errorf("%s: after Close fw-c still shows %q", c.mode, x)
		}
	}
}

func TestIntegrationAttachErrors(t *testing.T) {
	l := newLab(t)
	_, err := l.attach(&Config{Interfaces: []string{"nosuch0"}})
	if !errors.Is(err, ErrNoInterface) || !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), `"nosuch0"`) {
		t.Errorf("missing interface: %v; want ErrNoInterface naming it", err)
	}
	// All or nothing: fw-c attaches first, then nosuch0 fails.
	_, err = l.attach(&Config{Interfaces: []string{l.FwClientLink, "nosuch0"}})
	if !errors.Is(err, ErrNoInterface) {
		t.Errorf("partly missing interfaces: %v", err)
	}
	if x := l.linkXDP(); x != "" {
		t.Errorf("failed Attach left %q on fw-c", x)
	}
	// A second program on an interface that has one: refused, named.
	f, err := l.attach(&Config{Interfaces: []string{l.FwClientLink}, Mode: ModeNative})
	must(t, err)
	_, err = l.attach(&Config{Interfaces: []string{l.FwClientLink}, Mode: ModeNative})
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), `"fw-c"`) {
		t.Errorf("second attach to fw-c: %v; want ErrBusy naming fw-c", err)
	} else {
		t.Logf("second attach: %v", err)
	}
	must(t, f.BlockSource(cli4, 0))
	if err := l.ping(cli4, srv4, "0.3"); err == nil {
		t.Error("the first filter stopped working after a refused second attach")
	}
}

// TestIntegrationKilledProcessDetaches proves that a SIGKILLed owner
// leaves nothing attached: the bpf_link is not pinned, so the kernel
// detaches the program when the last file descriptor closes.
func TestIntegrationKilledProcessDetaches(t *testing.T) {
	l := newLab(t)
	exe, err := os.Executable()
	must(t, err)
	cmd := exec.Command("ip", "netns", "exec", l.Firewall.Name, exe, "-test.run=^TestHelperAttachAndWait$")
	cmd.Env = append(os.Environ(), "QGUARD_XDP_HELPER="+l.FwClientLink)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	cmd.Stderr = os.Stderr
	must(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "attached") {
		t.Fatalf("helper: %q, %v", line, err)
	}
	if l.linkXDP() == "" {
		t.Fatal("helper attached but fw-c shows no XDP program")
	}
	if err := l.ping(cli4, srv4, "0.3"); err == nil {
		t.Fatal("helper's block did not drop")
	}
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	if x := l.linkXDP(); x != "" {
		t.Errorf("after SIGKILL fw-c still shows %q", x)
	}
	if err := l.ping(cli4, srv4, "2"); err != nil {
		t.Errorf("ping after the owner died: %v", err)
	}
}

// TestHelperAttachAndWait is the child of TestIntegrationKilledProcessDetaches.
func TestHelperAttachAndWait(t *testing.T) {
	iface := os.Getenv("QGUARD_XDP_HELPER")
	if iface == "" {
		t.Skip("helper process for TestIntegrationKilledProcessDetaches")
	}
	f, err := Attach(&Config{Interfaces: []string{iface}})
	must(t, err)
	must(t, f.BlockSource(cli4, 0))
	fmt.Println("attached")
	time.Sleep(time.Minute)
}

// TestIntegrationWithoutCapabilities re-runs the test binary as root with
// every capability dropped (setpriv, util-linux) and checks that loading
// fails with ErrPermission, which also matches ErrUnsupported: the daemon's
// cue to fall back to nftables sets.
func TestIntegrationWithoutCapabilities(t *testing.T) {
	testutil.NeedRoot(t, "to load BPF programs")
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	exe, err := os.Executable()
	must(t, err)
	cmd := exec.Command(setpriv, "--bounding-set=-all", "--inh-caps=-all", exe, "-test.run=^TestHelperLoadWithoutCapabilities$", "-test.v")
	cmd.Env = append(os.Environ(), "QGUARD_XDP_HELPER_NOCAPS=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestHelperLoadWithoutCapabilities") {
		t.Fatalf("helper without capabilities: %v\n%s", err, out)
	}
}

// TestHelperLoadWithoutCapabilities is the child of
// TestIntegrationWithoutCapabilities.
func TestHelperLoadWithoutCapabilities(t *testing.T) {
	if os.Getenv("QGUARD_XDP_HELPER_NOCAPS") == "" {
		t.Skip("helper process for TestIntegrationWithoutCapabilities")
	}
	for name, load := range map[string]func() (*Filter, error){
		"New":    func() (*Filter, error) { return New(nil) },
		"Attach": func() (*Filter, error) { return Attach(&Config{Interfaces: []string{"lo"}}) },
	} {
		f, err := load()
		if err == nil {
			_ = f.Close()
			t.Fatalf("%s succeeded without capabilities", name)
		}
		if !errors.Is(err, ErrPermission) || !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "CAP_BPF") {
			t.Errorf("%s: %v; want ErrPermission (and ErrUnsupported) naming CAP_BPF", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
}

// TestIntegrationAutoFallback attaches to loopback, whose driver has no
// native XDP: ModeNative fails, ModeAuto ends in generic mode and says why.
func TestIntegrationAutoFallback(t *testing.T) {
	testutil.NeedRoot(t, "to load BPF programs")
	ns := testutil.NewNetNS(t, "qxl")
	var native, auto *Filter
	var nerr, aerr error
	must(t, ns.Do(func() error {
		native, nerr = Attach(&Config{Interfaces: []string{"lo"}, Mode: ModeNative})
		auto, aerr = Attach(&Config{Interfaces: []string{"lo"}, Mode: ModeAuto})
		return nil
	}))
	if native != nil {
		_ = native.Close()
	}
	if !errors.Is(nerr, ErrUnsupported) || !strings.Contains(nerr.Error(), `"lo" (native mode)`) {
		t.Errorf("native on lo: %v; want ErrUnsupported naming lo and the mode", nerr)
	}
	if aerr != nil {
		t.Fatalf("auto on lo: %v", aerr)
	}
	defer auto.Close()
	a := auto.Attachments()
	if len(a) != 1 || a[0].Mode != ModeGeneric || a[0].Fallback == "" {
		t.Fatalf("auto on lo: %+v; want generic with the native error as Fallback", a)
	}
	t.Logf("auto on lo: %v, fallback because: %s", a[0], a[0].Fallback)
	out, err := ns.Output("ip", "-d", "link", "show", "lo")
	must(t, err)
	if !strings.Contains(out, "xdpgeneric") {
		t.Errorf("ip -d link show lo: no xdpgeneric:\n%s", out)
	}
}
