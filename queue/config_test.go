package queue

import (
	"errors"
	"reflect"
	"testing"
)

func TestConfigDefaults(t *testing.T) {
	c, err := (*Config)(nil).resolve()
	if err != nil {
		t.Fatal(err)
	}
	if c.Count != 1 || c.CopyMode != CopyPacket || c.CopyRange != nfqMaxCopyRange || c.MaxLen != DefaultMaxLen ||
		c.DefaultVerdict != Accept || c.VerdictMode != Batch || c.BatchSize != DefaultBatchSize ||
		c.FlushInterval != DefaultFlushInterval || c.Logger == nil || c.RcvBuf != DefaultRcvBuf {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{Num: 65535, Count: 2},
		{CopyMode: 9},
		{Flags: 1 << 7},
		{DefaultVerdict: Repeat},
		{VerdictMode: 9},
		{BatchSize: 5000},
		{CPUs: []int{-1}},
	} {
		if _, err := c.resolve(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err %v, want ErrConfig", c, err)
		}
	}
}

func TestParseProcQueues(t *testing.T) {
	in := "    0  12345     3 2 65531     7     1      100  1\n" +
		"65535      0     0 2  1500     0     0        0  1\n"
	got, err := ParseProcQueues([]byte(in))
	if err != nil || len(got) != 2 {
		t.Fatalf("got %+v, %v", got, err)
	}
	want := KernelStats{Valid: true, Queue: 0, PortID: 12345, QueueTotal: 3, CopyMode: 2, CopyRange: 65531,
		QueueDropped: 7, UserDropped: 1, IDSequence: 100}
	if got[0] != want || got[1].Queue != 65535 {
		t.Fatalf("got %+v", got)
	}
	for _, bad := range []string{"1 2 3\n", "x 2 3 4 5 6 7 8 1\n", "70000 2 3 4 5 6 7 8 1\n"} {
		if _, err := ParseProcQueues([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestVerdictStrings(t *testing.T) {
	if Accept.String() != "accept" || Verdict(99).String() != "invalid" || Batch.String() != "batch" {
		t.Fatal("names")
	}
	var p Packet
	p.QueueTo(3, true)
	p.SetMark(9)
	if p.Verdict() != Queue || p.toQueue != 3 || !p.bypass {
		t.Fatal("QueueTo")
	}
	if m, ok := p.NewMark(); m != 9 || !ok {
		t.Fatal("SetMark")
	}
}

// TestDefaultConfig: the spelled-out defaults are what a zero Config
// resolves to, with DefaultFlags.
func TestDefaultConfig(t *testing.T) {
	d := DefaultConfig()
	zero, err := (&Config{Flags: DefaultFlags}).resolve()
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.resolve()
	if err != nil {
		t.Fatal(err)
	}
	got.Logger, zero.Logger = nil, nil
	if got.Flags != FlagFailOpen|FlagGSO || !reflect.DeepEqual(got, zero) {
		t.Fatalf("DefaultConfig resolves to %+v, a zero Config with DefaultFlags to %+v", got, zero)
	}
}

// TestTextForms: every verdict mode and settable verdict round-trips
// through its text, and a wrong text names the accepted ones.
func TestTextForms(t *testing.T) {
	for _, m := range []VerdictMode{Batch, Vectored, PerPacket} {
		b, _ := m.MarshalText()
		var got VerdictMode
		if err := got.UnmarshalText(b); err != nil || got != m {
			t.Errorf("verdict mode %v: text %q parses to %v, %v", m, b, got, err)
		}
	}
	for _, v := range []Verdict{Accept, Drop} {
		b, _ := v.MarshalText()
		var got Verdict
		if err := got.UnmarshalText(b); err != nil || got != v {
			t.Errorf("verdict %v: text %q parses to %v, %v", v, b, got, err)
		}
	}
	bad := map[string]string{
		"perpacket": `unknown verdict mode "perpacket"; expected one of: batch, vectored, per-packet`,
		"default":   `unknown verdict mode "default"; expected one of: batch, vectored, per-packet`,
	}
	for in, want := range bad {
		var m VerdictMode
		if err := m.UnmarshalText([]byte(in)); err == nil || err.Error() != want || !errors.Is(err, ErrConfig) {
			t.Errorf("verdict mode %q: %v, want %q (ErrConfig)", in, err, want)
		}
	}
	for _, in := range []string{"repeat", "queue", "unset", "reject", "Accept"} {
		var v Verdict
		want := `unknown verdict "` + in + `"; expected one of: accept, drop`
		if err := v.UnmarshalText([]byte(in)); err == nil || err.Error() != want || !errors.Is(err, ErrConfig) {
			t.Errorf("verdict %q: %v, want %q (ErrConfig)", in, err, want)
		}
	}
}
