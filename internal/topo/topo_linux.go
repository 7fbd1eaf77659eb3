package topo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"
)

// ErrNotRoot is returned when the caller lacks the privileges to create
// namespaces.
var ErrNotRoot = errors.New("topo: need root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")

// ErrIPv6NotReady is returned when the kernel does not configure IPv6 on a
// topology link in time.
var ErrIPv6NotReady = errors.New("topo: IPv6 not configured on a link")

// NS is one named network namespace.
type NS struct {
	Name string
}

// Path is the namespace's bind mount, usable with setns(2) or `ip netns exec`.
func (n NS) Path() string { return "/var/run/netns/" + n.Name }

// New creates a named namespace with loopback up. Remove deletes it.
func New(prefix string) (NS, error) {
	if os.Geteuid() != 0 {
		return NS{}, ErrNotRoot
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	n := NS{Name: prefix + "-" + hex.EncodeToString(b[:])}
	if err := Run("ip", "netns", "add", n.Name); err != nil {
		return NS{}, fmt.Errorf("create namespace %s: %w", n.Name, err)
	}
	// Addresses must be usable at once: DAD would hold link-local and global
	// IPv6 addresses tentative for a second.
	for _, argv := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"},
		{"sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"},
	} {
		if err := n.Run(argv...); err != nil {
			_ = n.Remove()
			return NS{}, err
		}
	}
	return n, nil
}

// Remove deletes the namespace; links inside it go with it.
func (n NS) Remove() error {
	if n.Name == "" {
		return nil
	}
	return Run("ip", "netns", "del", n.Name)
}

// Run runs argv inside the namespace and returns an error carrying its
// output when it fails.
func (n NS) Run(argv ...string) error {
	_, err := n.Output(argv...)
	return err
}

// Output runs argv inside the namespace and returns its standard output.
func (n NS) Output(argv ...string) (string, error) {
	return output(append([]string{"ip", "netns", "exec", n.Name}, argv...)...)
}

// Command returns an unstarted command that runs argv inside the namespace.
func (n NS) Command(ctx context.Context, argv ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name}, argv...)...)
}

// Do runs fn with the calling goroutine's thread inside the namespace.
// Sockets opened by fn stay in the namespace after Do returns. If the thread
// cannot be moved back, it stays locked so the runtime discards it.
func (n NS) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(n.Name)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open namespace %s: %w", n.Name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: %w", n.Name, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime kills it when the goroutine exits.
		return errors.Join(ferr, fmt.Errorf("leave namespace %s: %w", n.Name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Run runs a command in the current namespace.
func Run(argv ...string) error {
	_, err := output(argv...)
	return err
}

func output(argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("run %q: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Topology is client -> firewall -> server. The firewall forwards between
// its two links, "fw-c" (towards the client) and "fw-s" (towards the server).
type Topology struct {
	Client, Firewall, Server NS

	ClientIP4, FwClientIP4, FwServerIP4, ServerIP4 netip.Addr
	ClientIP6, FwClientIP6, FwServerIP6, ServerIP6 netip.Addr

	// Link names, as seen inside each namespace.
	ClientLink, FwClientLink, FwServerLink, ServerLink string

	once sync.Once
}

// Options tune a topology; the zero value is fine.
type Options struct {
	// Prefix names the namespaces (default "qg"); keep it short.
	Prefix string
	// ExtraClientAddrs are additional IPv4/IPv6 addresses on the client, e.g.
	// to test source-address policy. They must lie in the client subnets
	// 198.18.1.0/24 and 2001:db8:1::/64.
	ExtraClientAddrs []netip.Addr
}

// NewTopology builds the three namespaces and their links. Close removes
// everything; on error nothing is left behind.
func NewTopology(o *Options) (t *Topology, err error) {
	if o == nil {
		o = &Options{}
	}
	p := o.Prefix
	if p == "" {
		p = "qg"
	}
	t = &Topology{
		ClientIP4: netip.MustParseAddr("198.18.1.2"), FwClientIP4: netip.MustParseAddr("198.18.1.1"),
		FwServerIP4: netip.MustParseAddr("198.18.2.1"), ServerIP4: netip.MustParseAddr("198.18.2.2"),
		ClientIP6: netip.MustParseAddr("2001:db8:1::2"), FwClientIP6: netip.MustParseAddr("2001:db8:1::1"),
		FwServerIP6: netip.MustParseAddr("2001:db8:2::1"), ServerIP6: netip.MustParseAddr("2001:db8:2::2"),
		ClientLink: "eth0", FwClientLink: "fw-c", FwServerLink: "fw-s", ServerLink: "eth0",
	}
	defer func() {
		if err != nil {
			_ = t.Close()
			t = nil
		}
	}()
	if t.Client, err = New(p + "c"); err != nil {
		return t, err
	}
	if t.Firewall, err = New(p + "f"); err != nil {
		return t, err
	}
	if t.Server, err = New(p + "s"); err != nil {
		return t, err
	}
	if err = veth(t.Client, t.ClientLink, t.Firewall, t.FwClientLink); err != nil {
		return t, err
	}
	if err = veth(t.Server, t.ServerLink, t.Firewall, t.FwServerLink); err != nil {
		return t, err
	}
	steps := []struct {
		ns   NS
		argv []string
	}{
		{t.Firewall, []string{"sysctl", "-qw", "net.ipv4.ip_forward=1"}},
		{t.Firewall, []string{"sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"}},
		{t.Client, []string{"ip", "addr", "add", "198.18.1.2/24", "dev", t.ClientLink}},
		{t.Client, []string{"ip", "-6", "addr", "add", "2001:db8:1::2/64", "dev", t.ClientLink, "nodad"}},
		{t.Firewall, []string{"ip", "addr", "add", "198.18.1.1/24", "dev", t.FwClientLink}},
		{t.Firewall, []string{"ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", t.FwClientLink, "nodad"}},
		{t.Firewall, []string{"ip", "addr", "add", "198.18.2.1/24", "dev", t.FwServerLink}},
		{t.Firewall, []string{"ip", "-6", "addr", "add", "2001:db8:2::1/64", "dev", t.FwServerLink, "nodad"}},
		{t.Server, []string{"ip", "addr", "add", "198.18.2.2/24", "dev", t.ServerLink}},
		{t.Server, []string{"ip", "-6", "addr", "add", "2001:db8:2::2/64", "dev", t.ServerLink, "nodad"}},
	}
	for _, a := range o.ExtraClientAddrs {
		bits := "/24"
		if a.Is6() {
			bits = "/64"
		}
		steps = append(steps, struct {
			ns   NS
			argv []string
		}{t.Client, []string{"ip", "addr", "add", a.String() + bits, "dev", t.ClientLink, "nodad"}})
	}
	for _, l := range []struct {
		ns   NS
		link string
	}{{t.Client, t.ClientLink}, {t.Firewall, t.FwClientLink}, {t.Firewall, t.FwServerLink}, {t.Server, t.ServerLink}} {
		steps = append(steps, struct {
			ns   NS
			argv []string
		}{l.ns, []string{"ip", "link", "set", l.link, "up"}})
	}
	steps = append(steps, []struct {
		ns   NS
		argv []string
	}{
		{t.Client, []string{"ip", "route", "add", "default", "via", "198.18.1.1"}},
		{t.Client, []string{"ip", "-6", "route", "add", "default", "via", "2001:db8:1::1"}},
		{t.Server, []string{"ip", "route", "add", "default", "via", "198.18.2.1"}},
		{t.Server, []string{"ip", "-6", "route", "add", "default", "via", "2001:db8:2::1"}},
	}...)
	for _, s := range steps {
		if err = s.ns.Run(s.argv...); err != nil {
			return t, err
		}
	}
	for _, l := range []struct {
		ns   NS
		link string
	}{{t.Client, t.ClientLink}, {t.Firewall, t.FwClientLink}, {t.Firewall, t.FwServerLink}, {t.Server, t.ServerLink}} {
		if err = waitIPv6(l.ns, l.link); err != nil {
			return t, err
		}
	}
	return t, nil
}

// ipv6ReadyTimeout bounds waitIPv6; the kernel normally takes at most a
// second (its link-event rate limit), more only when its workers starve.
const ipv6ReadyTimeout = 10 * time.Second

// waitIPv6 waits until the kernel has configured IPv6 on link: until then
// the link has no multicast route and drops every neighbour solicitation
// it receives (IP_INNOROUTES), so the first IPv6 packets across it wait
// for a retransmission a second later, or fail. IPv6 is configured when
// the kernel's link-event worker sees the carrier; it handles the events
// of a veth whose peer has the same interface index (eth0 and fw-c are
// both index 2 in their fresh namespaces) as non-urgent, up to a second
// late, and later still on a busy machine. The link-local address is
// added in the same step, after the multicast route, so it is the sign.
func waitIPv6(n NS, link string) error {
	deadline := time.Now().Add(ipv6ReadyTimeout)
	for {
		out, err := n.Output("ip", "-6", "-o", "addr", "show", "dev", link, "scope", "link")
		if err != nil {
			return err
		}
		if strings.Contains(out, "fe80::") && !strings.Contains(out, "tentative") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s in %s has no usable link-local address after %v (%q)", ErrIPv6NotReady, link, n.Name, ipv6ReadyTimeout, strings.TrimSpace(out))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func veth(a NS, aName string, b NS, bName string) error {
	return Run("ip", "link", "add", aName, "netns", a.Name, "type", "veth", "peer", "name", bName, "netns", b.Name)
}

// Close removes the three namespaces. It is safe to call more than once.
func (t *Topology) Close() error {
	var err error
	t.once.Do(func() {
		for _, n := range []NS{t.Client, t.Firewall, t.Server} {
			err = errors.Join(err, n.Remove())
		}
	})
	return err
}

// Leftovers lists namespaces whose names start with prefix, so tests can
// prove that nothing is left behind.
func Leftovers(prefix string) ([]string, error) {
	entries, err := os.ReadDir("/var/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
