package topo_test

import (
	"testing"

	"github.com/qguard/qguard/internal/topo"
)

func TestSNMPField(t *testing.T) {
	snmp := "Ip: Forwarding DefaultTTL\nIp: 1 64\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\nUdp: 10 0 3 9 7 0\nUdpLite: InDatagrams RcvbufErrors\nUdpLite: 0 5\n"
	for _, tc := range []struct {
		text, prefix, name string
		want               uint64
	}{
		{snmp, "Udp:", "RcvbufErrors", 7},
		{snmp, "UdpLite:", "RcvbufErrors", 5},
		{snmp, "Ip:", "DefaultTTL", 64},
		{snmp, "Udp:", "Missing", 0},
		{"Udp: RcvbufErrors\n", "Udp:", "RcvbufErrors", 0}, // a header without values
	} {
		if got := topo.SNMPField(tc.text, tc.prefix, tc.name); got != tc.want {
			t.Errorf("%s %s = %d, want %d", tc.prefix, tc.name, got, tc.want)
		}
	}
}
