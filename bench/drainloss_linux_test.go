package bench

import (
	"strings"
	"testing"
)

func TestStatColumn(t *testing.T) {
	const arp = "entries  allocs unresolved_discards table_fulls\n" +
		"00000019 00004341 00000002 00000000\n" +
		"00000019 00003fe5 0000000a 00000000\n"
	if got := statColumn(arp, "unresolved_discards"); got != 12 {
		t.Errorf("unresolved_discards = %d, want 12", got)
	}
	if got := statColumn(arp, "insert_failed"); got != 0 {
		t.Errorf("a missing column = %d, want 0", got)
	}
	const softnet = "3a23f38d 00000010 00000009\n1498b7de 00000001 00000003\n"
	if got := sumColumn(softnet, 1); got != 17 {
		t.Errorf("softnet dropped = %d, want 17", got)
	}
}

func TestLinkDropsParse(t *testing.T) {
	const dev = "Inter-|   Receive                                                |  Transmit\n" +
		" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
		"    lo: 6057299    6103    0    2    0     0          0         0  6057299    6103    0    3    0     0       0          0\n" +
		"  veth0:       0       0    0    0    0     0          0         0        0       0    0    5    0     0       0          0\n"
	if got := sumDevDrops(dev); got != 10 {
		t.Errorf("link drops = %d, want 10", got)
	}
}

// The failure seen at load ~20: a 16384-frame burst into a 16384-long
// queue with one late echo in it. The sink counts 16383; the queue took
// 16384 (one not the burst's) and dropped one frame.
func TestLossForeign(t *testing.T) {
	d := lossCounters{sent: 16384, sink: 16383, queued: 16384, qDropped: 1, waiting: 16384}
	if f := d.foreign(); f != 1 {
		t.Errorf("foreign = %d, want 1", f)
	}
	if s := d.String(); !strings.Contains(s, "queued 16384 (1 not the burst's), queue_dropped 1") {
		t.Errorf("diagnostic %q does not name the foreign packet and the drop", s)
	}
	// A frame lost on a link is not explained by foreign packets.
	d = lossCounters{sent: 16384, sink: 16383, queued: 16383, links: [3]uint64{0, 1, 0}}
	if f := d.foreign(); f != 0 {
		t.Errorf("foreign = %d, want 0", f)
	}
}
