package rules

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
)

func TestConfigNormalize(t *testing.T) {
	n, err := (&Config{}).normalize()
	if err != nil {
		t.Fatal(err)
	}
	if n.Table != "qguard" || len(n.Hooks) != 1 || n.Hooks[0].Name != "forward" || n.QueueCount != 1 ||
		n.Marks != DefaultMarks || n.BlockSetTimeout != 10*time.Minute || n.FlowTimeout != 2*time.Minute {
		t.Errorf("defaults: %+v", n)
	}
	if n, err := (*Config)(nil).normalize(); err != nil || !n.Bypass || !n.Offload {
		t.Errorf("nil config: %+v, %v", n, err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(c *Config)
		want string
	}{
		{"hook", func(c *Config) { c.Hooks = []Hook{{Name: "ingress"}} }, `hooks[0]: unknown hook "ingress"`},
		{"hook twice", func(c *Config) { c.Hooks = []Hook{{Name: "input"}, {Name: "input", Priority: 1}} }, `hooks[1]: hook "input" listed twice`},
		{"queue range", func(c *Config) { c.QueueNum, c.QueueCount = 65535, 2 }, "exceed 65535"},
		{"fanout", func(c *Config) { c.Fanout = true }, "fanout needs a queue count"},
		{"mark outside mask", func(c *Config) { c.Marks.AcceptFlow = 0x100 }, "marks.accept_flow 0x100 must be non-zero and inside mask"},
		{"mark zero", func(c *Config) { c.Marks.Reject = 0 }, "marks.reject 0x0"},
		{"marks equal", func(c *Config) { c.Marks.DropFlow = c.Marks.AcceptFlow }, "marks.accept_flow and marks.drop_flow are both"},
		{"protocol", func(c *Config) { c.Steer.Protocols = []string{"tcp", "quic"} }, `protocols[1]: unknown protocol "quic"`},
		{"ports without port protocol", func(c *Config) {
			c.Steer.Protocols = []string{"icmp"}
			c.Steer.DPorts = []PortRange{{Lo: 53, Hi: 53}}
		}, "none of protocols [icmp] has ports"},
		{"port range", func(c *Config) { c.Steer.SPorts = []PortRange{{Lo: 10, Hi: 5}} }, "sports[0]: 10-5 ends before it starts"},
		{"iface", func(c *Config) { c.Steer.OutIfs = []string{"eth*"} }, `out_ifaces[0]: bad interface name "eth*"`},
		{"long iface", func(c *Config) { c.Steer.InIfs = []string{"abcdefghijklmnop"} }, "in_ifaces[0]"},
		{"prefix", func(c *Config) { c.Steer.Sources = []netip.Prefix{{}} }, "sources[0]: invalid prefix"},
		{"timeout", func(c *Config) { c.FlowTimeout = time.Microsecond }, "below 1ms"},
		{"table", func(c *Config) { c.Table = "a\x00b" }, "table name"},
		{"impl", func(c *Config) { c.Queue = 9 }, "queue implementation 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(c)
			_, err := c.normalize()
			if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalidConfig with %q", err, tc.want)
			}
		})
	}
}

func TestProtocols(t *testing.T) {
	c := DefaultConfig()
	if got := c.protocols(); len(got) != 4 {
		t.Errorf("protocols %v", got)
	}
	c.Steer.DPorts = []PortRange{{Lo: 53, Hi: 53}}
	if got := c.protocols(); len(got) != 2 || got[0] != 6 || got[1] != 17 {
		t.Errorf("with ports: %v, want tcp and udp only", got)
	}
	c.Steer.Protocols = nil
	if got := c.protocols(); len(got) != 4 {
		t.Errorf("ports, no protocols: %v, want tcp, udp, sctp, udplite", got)
	}
}

// keys renders interval elements as "start end]" for comparison.
func keys(el []nftables.SetElement) string {
	var s []string
	for _, e := range el {
		var k string
		if a, ok := netip.AddrFromSlice(e.Key); ok {
			k = a.String()
		} else if len(e.Key) == 2 {
			k = strconv.Itoa(int(binary.BigEndian.Uint16(e.Key)))
		}
		if e.IntervalEnd {
			k += "]"
		}
		s = append(s, k)
	}
	return strings.Join(s, " ")
}

func TestIntervalElements(t *testing.T) {
	got := keys(portElems([]PortRange{{Lo: 8000, Hi: 8100}, {Lo: 53, Hi: 53}, {Lo: 54, Hi: 60}, {Lo: 8050, Hi: 9000}, {Lo: 65000, Hi: 65535}}))
	if want := "0] 53 61] 8000 9001] 65000"; got != want {
		t.Errorf("ports: %s, want %s", got, want)
	}
	got = keys(portElems([]PortRange{{Lo: 0, Hi: 10}}))
	if want := "0 11]"; got != want {
		t.Errorf("ports from 0: %s, want %s", got, want)
	}
	ps := []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("198.18.0.0/24"),
		netip.MustParsePrefix("198.18.1.7/32"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("10.0.0.1/8")}
	if got, want := keys(prefixElems(ps, false)), "0.0.0.0] 10.0.0.0 11.0.0.0] 198.18.0.0 198.18.2.0]"; got != want {
		t.Errorf("v4: %s, want %s", got, want)
	}
	if got, want := keys(prefixElems(ps, true)), "::] 2001:db8:: 2001:db9::]"; got != want {
		t.Errorf("v6: %s, want %s", got, want)
	}
	if got := prefixElems([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, false); keys(got) != "0.0.0.0" {
		t.Errorf("0/0: %s", keys(got))
	}
	if got := prefixElems(ps[:1], true); got != nil {
		t.Errorf("no v6 prefixes: %v", got)
	}
}

func TestMarksSet(t *testing.T) {
	m := DefaultMarks
	if got := m.Set(0xab0042cd, m.AcceptFlow); got != 0xab0142cd {
		t.Errorf("Set = %#x", got)
	}
	if got := m.Set(0xffffffff, 0xffffffff); got != 0xffffffff {
		t.Errorf("Set outside mask = %#x", got)
	}
}

// TestModeText: the modes round-trip through their text, and a wrong text
// names the accepted ones.
func TestModeText(t *testing.T) {
	for _, m := range []Mode{QueueAll, KernelFirst} {
		b, _ := m.MarshalText()
		var got Mode
		if err := got.UnmarshalText(b); err != nil || got != m {
			t.Errorf("mode %v: text %q parses to %v, %v", m, b, got, err)
		}
	}
	_, err := ParseMode("kernel-only")
	want := `unknown rules mode "kernel-only"; expected one of: queue-all, kernel-first`
	if err == nil || err.Error() != want || !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("ParseMode(kernel-only): %v, want %q (ErrInvalidConfig)", err, want)
	}
}
