package engine

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/verdict"
)

// TestRecordAllocs: recording a decision allocates nothing on the packet
// path (the writer, not running while measured, formats them later); a
// full buffer counts drops, and the rate limit and sampling count theirs.
func TestRecordAllocs(t *testing.T) {
	e := offline(t, testPolicy(), true)
	path := filepath.Join(t.TempDir(), "record.json")
	const n = 2000
	r, err := newRecorder(config.Record{Output: path, Sample: 1, Rate: verdict.Rate{Events: 1e9, Per: time.Second},
		Buffer: n}, verdict.SystemIfaces())
	if err != nil {
		t.Fatal(err)
	}
	e.rec = r
	pkts := make([][]byte, n+100)
	for i := range pkts {
		pkts[i] = udp4("198.18.1.2", "198.18.2.2", uint16(2000+i), 80, "hello") // a new flow each
	}
	var p queue.Packet
	i := 0
	allocs := testing.AllocsPerRun(n-1, func() { // AllocsPerRun runs it once more to warm up
		p = queue.Packet{Payload: pkts[i]}
		e.Handle(&p)
		i++
	})
	if allocs != 0 {
		t.Errorf("Handle with a record allocates %v times per packet", allocs)
	}
	for ; i < len(pkts); i++ { // the buffer is full: these are dropped
		p = queue.Packet{Payload: pkts[i]}
		e.Handle(&p)
	}
	r.started.Store(true)
	go r.run()
	r.close()
	st := r.stats()
	if st.Written != n || st.Dropped != 100 {
		t.Errorf("stats %+v, want %d written, 100 dropped", st, n)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	lines := 0
	for sc.Scan() {
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.EventType != "decision" || rec.Proto != "UDP" || rec.DestPort != 80 || rec.SrcPort != uint16(2000+lines) || rec.IPVersion != 4 {
			t.Fatalf("line %d: %+v", lines, rec)
		}
		lines++
	}
	if lines != n {
		t.Errorf("%d lines", lines)
	}
}

func TestRecordLimits(t *testing.T) {
	e := offline(t, testPolicy(), true)
	r, err := newRecorder(config.Record{Output: filepath.Join(t.TempDir(), "r.json"), Sample: 3,
		Rate: verdict.Rate{Events: 10, Per: time.Hour}, Buffer: 100}, verdict.SystemIfaces())
	if err != nil {
		t.Fatal(err)
	}
	r.rate = 5 // tokens per second: the burst; an hour's 10 would refill too slowly to matter
	e.rec = r
	for i := 0; i < 60; i++ {
		p := queue.Packet{Payload: udp4("198.18.1.2", "198.18.2.2", uint16(3000+i), 80, "x")}
		e.Handle(&p)
	}
	st := r.stats()
	if st.Sampled != 40 || st.Limited+uint64(len(r.ch)) != 20 || len(r.ch) > 6 {
		t.Errorf("stats %+v, %d queued", st, len(r.ch))
	}
	r.close()
}
