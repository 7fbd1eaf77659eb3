package bench

import "testing"

func TestParseNFTSink(t *testing.T) {
	out := `table netdev qgbsink {
	chain in {
		type filter hook ingress device "eth0" priority filter; policy accept;
		meta protocol ip udp dport 9000 counter packets 10 bytes 640 drop
		meta protocol ip6 udp dport 9000 counter packets 5 bytes 320 drop
	}
}`
	p, b, err := parseNFTSink(out)
	if err != nil {
		t.Fatal(err)
	}
	// 10 IPv4 packets of 64 bytes carry 36 bytes each, 5 IPv6 ones 16.
	if p != 15 || b != 10*36+5*16 {
		t.Errorf("got %d packets, %d payload bytes; want 15, %d", p, b, 10*36+5*16)
	}
	for _, bad := range []string{
		"table netdev qgbsink {\n}",
		"meta protocol ip udp dport 9000 counter packets 10 bytes 640 drop",
		"meta protocol ip udp dport 9000 counter packets 10 bytes 100 drop\nmeta protocol ip6 udp dport 9000 counter packets 0 bytes 0 drop",
	} {
		if _, _, err := parseNFTSink(bad); err == nil {
			t.Errorf("parse %q: no error", bad)
		}
	}
}
