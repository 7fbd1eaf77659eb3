package queue

import (
	"bytes"
	"testing"
)

func TestKernelVerdict(t *testing.T) {
	cases := []struct {
		v      Verdict
		q      uint16
		bypass bool
		want   uint32
	}{
		{Accept, 0, false, 1},
		{Drop, 0, false, 0},
		{Repeat, 0, false, 4},
		{Queue, 7, false, 7<<16 | 3},
		{Queue, 0xffff, true, 0xffff<<16 | 0x8000 | 3},
	}
	for _, c := range cases {
		if got := kernelVerdict(c.v, c.q, c.bypass); got != c.want {
			t.Errorf("%s(%d, %v) = %#x, want %#x", c.v, c.q, c.bypass, got, c.want)
		}
	}
}

func TestEncoderLayout(t *testing.T) {
	e := newEncoder(0x0102, Vectored, 1024)
	e.add(10, nfAccept, 0, false, nil, false)
	e.add(11, nfDrop, 0x42, true, nil, false)
	e.add(12, nfAccept, 0, false, []byte{1, 2, 3, 4, 5}, true)
	want := []byte{
		32, 0, 0, 0, 1, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, // nlmsghdr: len 32, NFQNL_MSG_VERDICT, NLM_F_REQUEST
		0, 0, 1, 2, // nfgenmsg: AF_UNSPEC, v0, queue 0x0102
		12, 0, 2, 0, 0, 0, 0, 1, 0, 0, 0, 10, // NFQA_VERDICT_HDR: NF_ACCEPT, id 10
		40, 0, 0, 0, 1, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 1, 2,
		12, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 11, // NF_DROP, id 11
		8, 0, 3, 0, 0, 0, 0, 0x42, // NFQA_MARK 0x42
		44, 0, 0, 0, 1, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 1, 2,
		12, 0, 2, 0, 0, 0, 0, 1, 0, 0, 0, 12,
		9, 0, 10, 0, 1, 2, 3, 4, 5, 0, 0, 0, // NFQA_PAYLOAD, 5 bytes + padding
	}
	if !bytes.Equal(e.buf, want) {
		t.Fatalf("encoded\n% x\nwant\n% x", e.buf, want)
	}
	if e.msgs != 3 || e.pkts != 3 || e.batches != 0 {
		t.Fatalf("msgs %d pkts %d batches %d", e.msgs, e.pkts, e.batches)
	}
}

func TestEncoderBatchCollapse(t *testing.T) {
	type in struct {
		id, verdict, mark uint32
		hasMark, payload  bool
	}
	cases := []struct {
		name string
		in   []in
		want []sentVerdict
	}{
		{"run of accepts", []in{{1, nfAccept, 0, false, false}, {2, nfAccept, 0, false, false}, {3, nfAccept, 0, false, false}},
			[]sentVerdict{{typ: msgVerdictBatch, verdict: nfAccept, id: 3}}},
		{"single stays plain", []in{{1, nfAccept, 0, false, false}},
			[]sentVerdict{{typ: msgVerdict, verdict: nfAccept, id: 1}}},
		{"verdict change splits", []in{{1, nfAccept, 0, false, false}, {2, nfAccept, 0, false, false}, {3, nfDrop, 0, false, false}, {4, nfAccept, 0, false, false}},
			[]sentVerdict{{typ: msgVerdictBatch, verdict: nfAccept, id: 2}, {typ: msgVerdict, verdict: nfDrop, id: 3}, {typ: msgVerdict, verdict: nfAccept, id: 4}}},
		{"mark change splits", []in{{1, nfAccept, 5, true, false}, {2, nfAccept, 5, true, false}, {3, nfAccept, 6, true, false}, {4, nfAccept, 0, false, false}},
			[]sentVerdict{{typ: msgVerdictBatch, verdict: nfAccept, id: 2, mark: 5, hasMark: true}, {typ: msgVerdict, verdict: nfAccept, id: 3, mark: 6, hasMark: true}, {typ: msgVerdict, verdict: nfAccept, id: 4}}},
		{"payload is individual and breaks the run", []in{{1, nfAccept, 0, false, false}, {2, nfAccept, 0, false, true}, {3, nfAccept, 0, false, false}, {4, nfAccept, 0, false, false}},
			[]sentVerdict{{typ: msgVerdict, verdict: nfAccept, id: 1}, {typ: msgVerdict, verdict: nfAccept, id: 2, payload: []byte{9}, hasPayload: true}, {typ: msgVerdictBatch, verdict: nfAccept, id: 4}}},
		{"ids going back never batch", []in{{5, nfAccept, 0, false, false}, {4, nfAccept, 0, false, false}},
			[]sentVerdict{{typ: msgVerdict, verdict: nfAccept, id: 5}, {typ: msgVerdict, verdict: nfAccept, id: 4}}},
		{"id wrap batches", []in{{0xffffffff, nfAccept, 0, false, false}, {0, nfAccept, 0, false, false}},
			[]sentVerdict{{typ: msgVerdictBatch, verdict: nfAccept, id: 0}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEncoder(4, Batch, 1024)
			for _, v := range c.in {
				var p []byte
				if v.payload {
					p = []byte{9}
				}
				e.add(v.id, v.verdict, v.mark, v.hasMark, p, v.payload)
			}
			got, ok := parseVerdicts(e.buf)
			if !ok || len(got) != len(c.want) {
				t.Fatalf("parsed %d messages (ok %v), want %d: %+v", len(got), ok, len(c.want), got)
			}
			for i := range got {
				w := c.want[i]
				w.queue = 4
				if g := got[i]; g.typ != w.typ || g.queue != w.queue || g.verdict != w.verdict || g.id != w.id ||
					g.mark != w.mark || g.hasMark != w.hasMark || !bytes.Equal(g.payload, w.payload) || g.hasPayload != w.hasPayload {
					t.Errorf("message %d: %+v, want %+v", i, g, w)
				}
			}
			if e.pkts != len(c.in) {
				t.Errorf("pkts %d, want %d", e.pkts, len(c.in))
			}
		})
	}
}

func TestEncoderVectoredNeverBatches(t *testing.T) {
	e := newEncoder(1, Vectored, 64)
	for id := uint32(1); id <= 100; id++ {
		e.add(id, nfAccept, 0, false, nil, false)
	}
	got, ok := parseVerdicts(e.buf)
	if !ok || len(got) != 100 || e.batches != 0 {
		t.Fatalf("got %d messages ok %v batches %d", len(got), ok, e.batches)
	}
	for i, v := range got {
		if v.typ != msgVerdict || v.id != uint32(i+1) {
			t.Fatalf("message %d: %+v", i, v)
		}
	}
}

func TestEncoderAllocs(t *testing.T) {
	e := newEncoder(1, Vectored, 64<<10)
	payload := make([]byte, 1500)
	id := uint32(0)
	allocs := testing.AllocsPerRun(1000, func() {
		e.reset()
		for range 16 {
			id++
			e.add(id, nfAccept, 0x42, true, nil, false)
		}
		e.add(id+1, nfAccept, 0, false, payload, true)
	})
	if allocs != 0 {
		t.Fatalf("encoder allocates %.1f per batch", allocs)
	}
}

func TestBindMsg(t *testing.T) {
	c, err := (&Config{Num: 5, CopyRange: 128, MaxLen: 300, Flags: FlagFailOpen | FlagGSO}).resolve()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		64, 0, 0, 0, 2, 3, 5, 0, 9, 0, 0, 0, 0, 0, 0, 0, // len 64, NFQNL_MSG_CONFIG, REQUEST|ACK, seq 9
		0, 0, 0, 5, // queue 5
		8, 0, 1, 0, 1, 0, 0, 0, // NFQA_CFG_CMD: BIND
		9, 0, 2, 0, 0, 0, 0, 128, 2, 0, 0, 0, // NFQA_CFG_PARAMS: range 128, NFQNL_COPY_PACKET
		8, 0, 3, 0, 0, 0, 1, 44, // NFQA_CFG_QUEUE_MAXLEN 300
		8, 0, 4, 0, 0, 0, 0, 0x1f, // NFQA_CFG_MASK
		8, 0, 5, 0, 0, 0, 0, 5, // NFQA_CFG_FLAGS: FAIL_OPEN|GSO
	}
	if got := bindMsg(5, 9, &c); !bytes.Equal(got, want) {
		t.Fatalf("bind message\n% x\nwant\n% x", got, want)
	}
	if got := unbindMsg(5, 10); len(got) != 28 || got[24] != cfgCmdUnbind {
		t.Fatalf("unbind message % x", got)
	}
	want = []byte{
		28, 0, 0, 0, 2, 3, 5, 0, 11, 0, 0, 0, 0, 0, 0, 0, // len 28, NFQNL_MSG_CONFIG, REQUEST|ACK, seq 11
		0, 0, 0, 5, // queue 5
		8, 0, 3, 0, 0, 0, 0, 0, // NFQA_CFG_QUEUE_MAXLEN 0, nothing else
	}
	if got := maxLenMsg(5, 11, 0); !bytes.Equal(got, want) {
		t.Fatalf("queue length message\n% x\nwant\n% x", got, want)
	}
}

// BenchmarkEncode adds verdicts to the encoder, a message of 64 at a time:
// batch collapses runs of accepts without a mark, vectored writes one
// verdict with a mark per packet.
func BenchmarkEncode(b *testing.B) {
	b.Run("batch", func(b *testing.B) { benchEncode(b, Batch, 0, false) })
	b.Run("vectored", func(b *testing.B) { benchEncode(b, Vectored, 0x42, true) })
}

func benchEncode(b *testing.B, mode VerdictMode, mark uint32, setMark bool) {
	e := newEncoder(1, mode, 64<<10)
	b.ReportAllocs()
	id := uint32(0)
	for b.Loop() {
		id++
		e.add(id, nfAccept, mark, setMark, nil, false)
		if id%64 == 0 {
			e.reset()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}
