package proto

import (
	"errors"
	"testing"
)

func TestNumberName(t *testing.T) {
	for _, name := range Names() {
		n, ok := Number(name)
		if !ok || Name(n) != name || String(n) != name {
			t.Errorf("Number(%q) = %d, %v; Name = %q", name, n, ok, Name(n))
		}
	}
	for name, want := range map[string]uint8{"dccp": 33, "gre": 47, "ipv6-icmp": 58, "icmpv6": 58, "udplite": 136} {
		if n, ok := Number(name); !ok || n != want {
			t.Errorf("Number(%q) = %d, %v, want %d", name, n, ok, want)
		}
	}
	for _, name := range []string{"", "TCP", "ipv6", "47", "tcp "} {
		if n, ok := Number(name); ok {
			t.Errorf("Number(%q) = %d, want unknown", name, n)
		}
	}
	if Name(200) != "" || String(200) != "proto 200" {
		t.Errorf("Name(200) = %q, String(200) = %q", Name(200), String(200))
	}
}

func TestParsePortRange(t *testing.T) {
	for in, want := range map[string]PortRange{"53": {53, 53}, "8000-8100": {8000, 8100}, " 0 - 65535 ": {0, 65535}} {
		got, err := ParsePortRange(in)
		if err != nil || got != want {
			t.Errorf("ParsePortRange(%q) = %v, %v", in, got, err)
		}
		if back, err := ParsePortRange(got.String()); err != nil || back != got {
			t.Errorf("ParsePortRange(%q.String()) = %v, %v", in, back, err)
		}
	}
	for in, want := range map[string]error{"": ErrNotPort, "x": ErrNotPort, "65536": ErrNotPort, "1-2-3": ErrNotPort,
		"-1": ErrNotPort, "80-": ErrNotPort, "10-5": ErrPortsBackward} {
		if r, err := ParsePortRange(in); !errors.Is(err, want) {
			t.Errorf("ParsePortRange(%q) = %v, %v, want %v", in, r, err, want)
		}
	}
	r := PortRange{Lo: 10, Hi: 20}
	if !r.Contains(10) || !r.Contains(20) || r.Contains(9) || r.Contains(21) {
		t.Errorf("%v.Contains is wrong at an edge", r)
	}
}

func TestValidIfName(t *testing.T) {
	for _, s := range []string{"eth0", "wg0", "veth*", "a-very-long-nam", "br.100", "..."} {
		if !ValidIfName(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range []string{"", ".", "..", "a-very-long-name", "eth0:1", "a/b", "a b", "a\tb", "a\x00"} {
		if ValidIfName(s) {
			t.Errorf("%q accepted", s)
		}
	}
}
