package queue

import (
	"errors"
	"testing"
)

func TestConfigDefaults(t *testing.T) {
	c, err := (*Config)(nil).resolve()
	if err != nil {
		t.Fatal(err)
	}
	if c.Count != 1 || c.CopyMode != CopyPacket || c.CopyRange != nfqMaxCopyRange || c.MaxLen != defaultMaxLen ||
		c.DefaultVerdict != Accept || c.VerdictMode != Batch || c.BatchSize != DefaultBatchSize ||
		c.FlushInterval != defaultFlush || c.Logger == nil || c.RcvBuf != defaultRcvBuf {
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
