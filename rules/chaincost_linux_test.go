package rules

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BenchmarkIntegrationChainCost measures what a packet of an established
// flow costs the sending thread on the output path (its CPU time: the
// UDP send, the output hook, conntrack, the transmit) with no table, with
// conntrack alone (one `ct state` rule, as bench mode kernel-conntrack),
// and with qguard's kernel-first table of a 100-rule policy, without and
// with a block_source rule (the block set lookups). The link's peer is
// down, so every datagram is dropped at transmit, after the hooks. Run:
//
//	go test -run '^$' -bench IntegrationChainCost -benchtime 200000x ./rules
//
// Compare the cpu-ns/pkt of the sub-benchmarks of one run: the difference
// between conntrack and kernel-first is what qguard's chain adds to an
// established packet (conntrack is its floor: per-flow verdicts need it).
func BenchmarkIntegrationChainCost(b *testing.B) {
	if testing.Short() {
		b.Skip("needs namespaces")
	}
	for _, mode := range []string{"no-table", "conntrack", "kernel-first", "kernel-first-blocking"} {
		b.Run(mode, func(b *testing.B) { benchChainCost(b, mode) })
	}
}

func benchChainCost(b *testing.B, mode string) {
	ns, fd := testNS(b)
	for _, argv := range [][]string{
		{"ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"ip", "link", "set", "v0", "up"},
		{"ip", "addr", "add", "10.99.0.1/24", "dev", "v0"},
		{"ip", "neigh", "replace", "10.99.0.2", "lladdr", "02:00:00:00:00:02", "dev", "v0", "nud", "permanent"},
	} {
		if err := ns.Run(argv...); err != nil {
			b.Fatalf("%v: %v", argv, err)
		}
	}
	switch mode {
	case "conntrack":
		file := filepath.Join(b.TempDir(), "ct.nft")
		text := "table inet kct {\n chain output {\n  type filter hook output priority 0; policy accept;\n  ct state new,established,related accept\n }\n}\n"
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			b.Fatal(err)
		}
		nft(b, ns, "-f", file)
	case "kernel-first", "kernel-first-blocking":
		applied(b, chainCostConfig(fd, mode == "kernel-first-blocking"))
	}
	var cpu time.Duration
	var sent int
	err := ns.Do(func() error {
		var err error
		cpu, sent, err = sendBatches(b, netip.MustParseAddr("10.99.0.2"), 9000, b.N)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(sent), "cpu-ns/pkt")
}

// chainCostConfig is bench mode daemon-kfirst's table at the output hook:
// 100 L3/L4 rules that never match, then the default accept; blocking adds
// a block_source rule that never matches either.
func chainCostConfig(fd int, blocking bool) *Config {
	c := DefaultConfig()
	c.NetNS, c.Mode, c.Offload = fd, KernelFirst, false
	c.Hooks = []Hook{{Name: "output"}}
	c.Steer = Steer{Protocols: []string{"udp"}}
	p := &Policy{Default: ActionAccept}
	for i := range 100 {
		r := PolicyRule{Name: fmt.Sprintf("r%d", i), Action: ActionDrop}
		switch i % 3 {
		case 0:
			r.Protos, r.HasSrc = []uint8{unix.IPPROTO_UDP}, true
			r.Src = []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}), 32)}
		case 1:
			r.Protos, r.DPorts = []uint8{unix.IPPROTO_TCP}, []PortRange{{Lo: uint16(1000 + i), Hi: uint16(1000 + i)}}
		default:
			r.Protos, r.DPorts = []uint8{unix.IPPROTO_UDP}, []PortRange{{Lo: uint16(20000 + i), Hi: uint16(20000 + i)}}
		}
		p.Rules = append(p.Rules, r)
	}
	if blocking {
		p.Rules = append(p.Rules, PolicyRule{Name: "scan", Protos: []uint8{unix.IPPROTO_TCP},
			DPorts: []PortRange{{Lo: 23, Hi: 23}}, Action: ActionDrop, BlockSource: time.Minute})
	}
	c.Policy = p
	return c
}

// sendBatches sends n 22-byte UDP datagrams to dst:port from the calling
// (locked) thread, 64 per sendmmsg, after a warm-up that creates the
// flow's conntrack entry, and returns the thread's CPU time for the n.
func sendBatches(b *testing.B, dst netip.Addr, port, n int) (time.Duration, int, error) {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, 0, err
	}
	defer unix.Close(s)
	if err := unix.Connect(s, &unix.SockaddrInet4{Addr: dst.As4(), Port: port}); err != nil {
		return 0, 0, err
	}
	type mmsghdr struct {
		hdr unix.Msghdr
		n   uint32
		_   [4]byte
	}
	payload := make([]byte, 22)
	iov := unix.Iovec{Base: &payload[0]}
	iov.SetLen(len(payload))
	msgs := make([]mmsghdr, 64)
	for i := range msgs {
		msgs[i].hdr.Iov = &iov
		msgs[i].hdr.SetIovlen(1)
	}
	send := func() int {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
		if e != 0 {
			return 0
		}
		return int(r)
	}
	for range 200 {
		send()
	}
	cpu := func() time.Duration {
		var ts unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
		return time.Duration(ts.Nano())
	}
	b.ResetTimer()
	c0, sent := cpu(), 0
	for sent < n {
		k := send()
		if k == 0 {
			return 0, 0, fmt.Errorf("sendmmsg sent nothing")
		}
		sent += k
	}
	c1 := cpu()
	b.StopTimer()
	return c1 - c0, sent, nil
}
