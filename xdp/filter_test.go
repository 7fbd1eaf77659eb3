package xdp

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/testutil"
)

// newFilter loads the program without attaching it.
func newFilter(t testing.TB, cfg *Config) *Filter {
	t.Helper()
	testutil.NeedRoot(t, "to load BPF programs")
	f, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func mustRun(t *testing.T, f *Filter, fr frame) Action {
	t.Helper()
	a, err := f.Run(fr.build())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return a
}

func TestIntegrationRunVerdicts(t *testing.T) {
	f := newFilter(t, nil)
	must(t, f.BlockSource(cli4, 0))
	must(t, f.BlockSource(cli6, time.Hour))
	must(t, f.BlockFlow(ProtoUDP, ap(alt4, 1000), ap(srv4, 53), 0))
	must(t, f.BlockFlow(ProtoTCP, ap(alt6, 1000), ap(srv6, 443), 0))
	must(t, f.BlockFlow(1, ap(alt4, 0), ap(srv4, 0), 0))

	udp4 := frame{proto: ProtoUDP, src: ap(alt4, 1000), dst: ap(srv4, 53)}
	tcp6 := frame{proto: ProtoTCP, src: ap(alt6, 1000), dst: ap(srv6, 443)}
	cases := []struct {
		name string
		fr   frame
		want Action
	}{
		{"blocked v4 source", frame{proto: ProtoUDP, src: ap(cli4, 1), dst: ap(srv4, 2)}, ActionDrop},
		{"blocked v4 source, vlan", frame{vlan: true, proto: ProtoTCP, src: ap(cli4, 1), dst: ap(srv4, 2)}, ActionDrop},
		{"blocked v4 source, options", frame{ihl: 15, proto: ProtoTCP, src: ap(cli4, 1), dst: ap(srv4, 2)}, ActionDrop},
		{"blocked v4 source, later fragment", frame{fragOff: 100, proto: ProtoUDP, src: ap(cli4, 1), dst: ap(srv4, 2)}, ActionDrop},
		{"blocked v6 source", frame{proto: 58, src: ap(cli6, 0), dst: ap(srv6, 0)}, ActionDrop},
		{"blocked v6 source behind ext headers", frame{ext: []uint8{0, 60}, proto: ProtoUDP, src: ap(cli6, 1), dst: ap(srv6, 2)}, ActionDrop},
		{"other v4 source", frame{proto: ProtoUDP, src: ap(alt4, 1), dst: ap(srv4, 2)}, ActionPass},
		{"other v6 source", frame{proto: ProtoUDP, src: ap(alt6, 1), dst: ap(srv6, 2)}, ActionPass},
		{"blocked destination is not a source", frame{proto: ProtoUDP, src: ap(srv4, 1), dst: ap(cli4, 2)}, ActionPass},
		{"blocked udp flow", udp4, ActionDrop},
		{"blocked udp flow, vlan", frame{vlan: true, proto: ProtoUDP, src: ap(alt4, 1000), dst: ap(srv4, 53)}, ActionDrop},
		{"blocked udp flow, options", frame{ihl: 6, proto: ProtoUDP, src: ap(alt4, 1000), dst: ap(srv4, 53)}, ActionDrop},
		{"udp flow, other dport", frame{proto: ProtoUDP, src: ap(alt4, 1000), dst: ap(srv4, 54)}, ActionPass},
		{"udp flow, other sport", frame{proto: ProtoUDP, src: ap(alt4, 1001), dst: ap(srv4, 53)}, ActionPass},
		{"udp flow, reverse direction", frame{proto: ProtoUDP, src: ap(srv4, 53), dst: ap(alt4, 1000)}, ActionPass},
		{"same ports over tcp", frame{proto: ProtoTCP, src: ap(alt4, 1000), dst: ap(srv4, 53)}, ActionPass},
		{"blocked tcp6 flow", tcp6, ActionDrop},
		{"blocked tcp6 flow behind ext headers", frame{ext: []uint8{0, 43, 60}, proto: ProtoTCP, src: ap(alt6, 1000), dst: ap(srv6, 443)}, ActionDrop},
		{"blocked tcp6 flow, first fragment", frame{ext: []uint8{44}, proto: ProtoTCP, src: ap(alt6, 1000), dst: ap(srv6, 443)}, ActionDrop},
		{"tcp6 flow, later fragment has no ports", frame{ext: []uint8{44}, fragOff: 8 << 3, proto: ProtoTCP, src: ap(alt6, 1000), dst: ap(srv6, 443)}, ActionPass},
		{"blocked icmp flow", frame{proto: 1, src: ap(alt4, 0), dst: ap(srv4, 0)}, ActionDrop},
		{"truncated ipv4", frame{proto: ProtoUDP, src: ap(cli4, 1), dst: ap(srv4, 2), truncate: 30}, ActionPass},
		{"truncated ports", frame{proto: ProtoUDP, src: ap(alt4, 1000), dst: ap(srv4, 53), truncate: 18}, ActionPass},
		{"arp", frame{etype: 0x0806, proto: ProtoUDP, src: ap(cli4, 1), dst: ap(srv4, 2)}, ActionPass},
	}
	for _, c := range cases {
		if got := mustRun(t, f, c.fr); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
	s := f.Stats()
	if s.DroppedSource != 6 || s.DroppedFlow != 7 || s.NonIP != 1 || s.ParseErrors != 2 || s.Passed != uint64(len(cases))-13 {
		t.Errorf("stats %+v: want 6 source drops, 7 flow drops, 1 non-IP, 2 parse errors, %d passed", s, len(cases)-13)
	}
}

func TestIntegrationExpiry(t *testing.T) {
	f := newFilter(t, &Config{ExpireInterval: -1}) // Expire by hand only
	must(t, f.BlockSource(cli4, time.Hour))
	must(t, f.BlockSource(cli6, 0))
	must(t, f.BlockFlow(ProtoUDP, ap(alt4, 1), ap(srv4, 2), 20*time.Millisecond))
	udp := frame{proto: ProtoUDP, src: ap(alt4, 1), dst: ap(srv4, 2)}
	if a := mustRun(t, f, udp); a != ActionDrop {
		t.Fatalf("flow before expiry: %v", a)
	}
	time.Sleep(30 * time.Millisecond)
	if a := mustRun(t, f, udp); a != ActionPass {
		t.Fatalf("flow after its ttl, before Expire: %v, want pass", a)
	}
	if s := f.Stats(); s.Expired != 1 {
		t.Errorf("Expired counter %d, want 1", s.Expired)
	}
	entries, err := f.Entries()
	must(t, err)
	if len(entries) != 3 {
		t.Fatalf("Entries: %d, want 3: %+v", len(entries), entries)
	}
	n, err := f.Expire(time.Now())
	must(t, err)
	if n != 1 {
		t.Errorf("Expire deleted %d, want 1", n)
	}
	// An hour ahead, the one-hour block goes too; the permanent one stays.
	n, err = f.Expire(time.Now().Add(time.Hour + time.Minute))
	must(t, err)
	if n != 1 {
		t.Errorf("Expire(+1h) deleted %d, want 1", n)
	}
	entries, err = f.Entries()
	must(t, err)
	if len(entries) != 1 || entries[0].Src.Addr() != cli6 || !entries[0].Expires.IsZero() {
		t.Errorf("left after expiry: %+v, want only the permanent %v", entries, cli6)
	}
}

func TestIntegrationEntries(t *testing.T) {
	f := newFilter(t, nil)
	must(t, f.BlockSource(netip.MustParseAddr("::ffff:198.18.1.2"), time.Minute))
	must(t, f.BlockFlow(ProtoTCP, ap(alt6, 5), ap(srv6, 6), 0))
	for range 3 {
		mustRun(t, f, frame{proto: ProtoUDP, src: ap(cli4, 1), dst: ap(srv4, 2)})
	}
	mustRun(t, f, frame{proto: ProtoTCP, src: ap(alt6, 5), dst: ap(srv6, 6)})
	entries, err := f.Entries()
	must(t, err)
	var src, flow Entry
	for _, e := range entries {
		switch e.Kind {
		case KindSource:
			src = e
		case KindFlow:
			flow = e
		}
	}
	if src.Src != ap(cli4, 0) || src.Hits != 3 || src.Expired {
		t.Errorf("source entry %+v: want %v with 3 hits", src, cli4)
	}
	if d := time.Until(src.Expires); d < 50*time.Second || d > time.Minute {
		t.Errorf("source entry expires in %s, want about a minute", d)
	}
	if flow.Proto != ProtoTCP || flow.Src != ap(alt6, 5) || flow.Dst != ap(srv6, 6) || flow.Hits != 1 || !flow.Expires.IsZero() {
		t.Errorf("flow entry %+v", flow)
	}
	must(t, f.UnblockSource(cli4))
	must(t, f.UnblockSource(cli4)) // not blocked: no error
	must(t, f.UnblockFlow(ProtoTCP, ap(alt6, 5), ap(srv6, 6)))
	if entries, _ := f.Entries(); len(entries) != 0 {
		t.Errorf("after unblock: %+v", entries)
	}
	if a := mustRun(t, f, frame{proto: ProtoUDP, src: ap(cli4, 1), dst: ap(srv4, 2)}); a != ActionPass {
		t.Errorf("after unblock: %v", a)
	}
}

func TestIntegrationLRUBound(t *testing.T) {
	f := newFilter(t, &Config{MaxSources: 64, MaxFlows: 64})
	for i := range 1000 {
		a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		must(t, f.BlockSource(a, 0)) // LRU: never "map full"
	}
	entries, err := f.Entries()
	must(t, err)
	if len(entries) > 64 || len(entries) == 0 {
		t.Errorf("%d entries in a 64-entry map", len(entries))
	}
}

func TestIntegrationExpireGoroutine(t *testing.T) {
	f := newFilter(t, &Config{ExpireInterval: 5 * time.Millisecond})
	must(t, f.BlockSource(cli4, time.Millisecond))
	deadline := time.Now().Add(2 * time.Second)
	for {
		entries, err := f.Entries()
		must(t, err)
		if len(entries) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expiry goroutine did not delete %+v", entries)
		}
		time.Sleep(5 * time.Millisecond)
	}
	must(t, f.Close())
	must(t, f.Close())
}

func TestIntegrationClosed(t *testing.T) {
	f := newFilter(t, nil)
	must(t, f.BlockSource(cli4, 0))
	mustRun(t, f, frame{proto: ProtoUDP, src: ap(cli4, 1), dst: ap(srv4, 2)})
	must(t, f.Close())
	if s := f.Stats(); s.DroppedSource != 1 {
		t.Errorf("Stats after Close: %+v, want the final counters", s)
	}
	for name, err := range map[string]error{
		"BlockSource": f.BlockSource(cli4, 0),
		"BlockFlow":   f.BlockFlow(ProtoUDP, ap(cli4, 1), ap(srv4, 2), 0),
		"Unblock":     f.UnblockSource(cli4),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if _, err := f.Entries(); !errors.Is(err, ErrClosed) {
		t.Errorf("Entries after Close: %v", err)
	}
	if _, err := f.Run(make([]byte, 64)); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationRunTruncated runs every prefix of blocked frames through
// the program: it must never abort, and it may drop only once the frame
// holds everything the matching entry needs.
func TestIntegrationRunTruncated(t *testing.T) {
	f := newFilter(t, nil)
	must(t, f.BlockSource(cli4, 0))
	must(t, f.BlockSource(cli6, 0))
	must(t, f.BlockFlow(ProtoUDP, ap(alt4, 1), ap(srv4, 2), 0))
	must(t, f.BlockFlow(ProtoTCP, ap(alt6, 1), ap(srv6, 2), 0))
	for _, c := range []struct {
		fr   frame
		need int // bytes needed for a drop
	}{
		{frame{proto: ProtoUDP, src: ap(cli4, 1), dst: ap(srv4, 2)}, 14 + 20},
		{frame{vlan: true, proto: ProtoUDP, src: ap(cli4, 1), dst: ap(srv4, 2)}, 18 + 20},
		{frame{proto: ProtoUDP, src: ap(cli6, 1), dst: ap(srv6, 2)}, 14 + 40},
		{frame{ext: []uint8{0, 60}, proto: ProtoUDP, src: ap(cli6, 1), dst: ap(srv6, 2)}, 14 + 40},
		{frame{ihl: 15, proto: ProtoUDP, src: ap(cli4, 1), dst: ap(srv4, 2)}, 14 + 20},
		{frame{proto: ProtoUDP, src: ap(alt4, 1), dst: ap(srv4, 2)}, 14 + 20 + 4},
		{frame{ihl: 8, proto: ProtoUDP, src: ap(alt4, 1), dst: ap(srv4, 2)}, 14 + 32 + 4},
		{frame{ext: []uint8{44}, proto: ProtoTCP, src: ap(alt6, 1), dst: ap(srv6, 2)}, 14 + 40 + 8 + 4},
	} {
		full := c.fr.build()
		for n := 14; n <= len(full); n++ { // the kernel wants an Ethernet header
			a, err := f.Run(full[:n])
			must(t, err)
			want := ActionPass
			if n >= c.need {
				want = ActionDrop
			}
			if a != want {
				t.Errorf("%+v cut to %d bytes: %v, want %v", c.fr, n, a, want)
			}
		}
	}
	if s := f.Stats(); s.ParseErrors == 0 {
		t.Errorf("no parse errors counted: %+v", s)
	}
}
