package xdp

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

func TestParseMode(t *testing.T) {
	for s, want := range map[string]Mode{"auto": ModeAuto, "native": ModeNative, "generic": ModeGeneric} {
		got, err := ParseMode(s)
		if err != nil || got != want || got.String() != s {
			t.Errorf("ParseMode(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "Auto", "skb", "drv"} {
		if _, err := ParseMode(s); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
			t.Errorf("ParseMode(%q): %v, want ErrInvalid naming the input", s, err)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := (*Config)(nil).withDefaults()
	if err != nil || c.Mode != ModeAuto || c.MaxSources != DefaultMaxSources || c.MaxFlows != DefaultMaxFlows || c.ExpireInterval != DefaultExpireInterval {
		t.Errorf("nil config: %+v, %v", c, err)
	}
	bad := map[string]Config{
		"MaxSources":    {MaxSources: -1},
		"MaxFlows":      {MaxFlows: MaxEntriesLimit + 1},
		"mode":          {Mode: 9},
		"Interfaces[1]": {Interfaces: []string{"eth0", ""}},
		`"eth0" listed`: {Interfaces: []string{"eth0", "eth0"}},
		"not a valid":   {Interfaces: []string{"a-very-long-interface-name"}},
	}
	for want, cfg := range bad {
		if _, err := cfg.withDefaults(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("config %+v: %v, want ErrInvalid mentioning %s", cfg, err, want)
		}
	}
}

func TestAttachNoInterfaces(t *testing.T) {
	if _, err := Attach(&Config{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Attach without interfaces: %v, want ErrInvalid", err)
	}
}

func TestSentinels(t *testing.T) {
	perm := classify("load program", syscall.EPERM)
	if !errors.Is(perm, ErrPermission) || !errors.Is(perm, ErrUnsupported) || !errors.Is(perm, syscall.EPERM) {
		t.Errorf("EPERM: %v does not match ErrPermission, ErrUnsupported and EPERM", perm)
	}
	if !strings.Contains(perm.Error(), "load program") || !strings.Contains(perm.Error(), "CAP_BPF") {
		t.Errorf("EPERM message %q", perm)
	}
	other := classify("load program", ebpf.ErrNotSupported)
	if !errors.Is(other, ErrUnsupported) || errors.Is(other, ErrPermission) {
		t.Errorf("ErrNotSupported: %v", other)
	}
	if !errors.Is(ErrNoInterface, ErrUnsupported) || errors.Is(ErrInvalid, ErrUnsupported) {
		t.Error("sentinel hierarchy: ErrNoInterface must match ErrUnsupported, ErrInvalid must not")
	}
}

func TestKeys(t *testing.T) {
	var k srcKey
	if err := makeSrcKey(&k, netip.MustParseAddr("::ffff:198.18.1.2")); err != nil || k.Family != 4 || k.Addr != [16]byte{198, 18, 1, 2} {
		t.Errorf("mapped address: %+v, %v", k, err)
	}
	if err := makeSrcKey(&k, netip.MustParseAddr("fe80::1%eth0")); err != nil || k.Family != 6 || getAddr(k.Family, &k.Addr) != netip.MustParseAddr("fe80::1") {
		t.Errorf("zoned address: %+v, %v", k, err)
	}
	if err := makeSrcKey(&k, netip.Addr{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid address: %v", err)
	}
	var fk flowKey
	if err := makeFlowKey(&fk, ProtoUDP, ap(cli4, 1000), ap(srv4, 53)); err != nil || fk.Sport != 1000 || fk.Dport != 53 || fk.Family != 4 {
		t.Errorf("udp flow key %+v, %v", fk, err)
	}
	for name, c := range map[string]struct {
		proto    uint8
		src, dst netip.AddrPort
	}{
		"mixes IPv4":  {ProtoUDP, ap(cli4, 1), ap(srv6, 2)},
		"no ports":    {1, ap(cli4, 1), ap(srv4, 0)},
		"source":      {ProtoUDP, netip.AddrPort{}, ap(srv4, 1)},
		"destination": {ProtoUDP, ap(cli4, 1), netip.AddrPort{}},
	} {
		if err := makeFlowKey(&fk, c.proto, c.src, c.dst); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := deadline(-time.Second); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative ttl: %v", err)
	}
}
