package topo

import (
	"strconv"
	"strings"
)

// SNMPField reads one counter from the text of /proc/net/snmp or
// /proc/net/netstat (a namespace's, read with NS.Output("cat", ...)),
// where each section is a header line of names and a line of values, both
// starting with prefix ("Udp:", "TcpExt:"). It is 0 when the counter is
// not there.
func SNMPField(text, prefix, name string) uint64 {
	lines := strings.Split(text, "\n")
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], prefix) || !strings.HasPrefix(lines[i+1], prefix) {
			continue
		}
		names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j := range names {
			if names[j] == name && j < len(vals) {
				n, _ := strconv.ParseUint(vals[j], 10, 64)
				return n
			}
		}
	}
	return 0
}
