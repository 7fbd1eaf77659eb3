package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// recordPolicy queues everything (mode queue-all): records are written for
// what user space decides, and kernel-first would decide the echo flow in
// the kernel.
const recordPolicy = `
queue: {num: 3}
rules:
  offload: false
  mode: queue-all
record:
  output: %s
policy:
  default: accept
  rules:
    - name: echo
      match: {proto: tcp, dport: [9000]}
      action: accept
    - name: trial-dns
      match: {dns: ["*.example"]}
      action: alert
`

// TestIntegrationRecord reads the JSON lines for a short TCP flow (its
// decision, then its flow record once conntrack forgets it) and a DNS
// query, and checks every field; SIGUSR1 reopens the file (logrotate).
func TestIntegrationRecord(t *testing.T) {
	top := newTopo(t, "qrc")
	servers(t, top)
	for _, s := range []string{"net.netfilter.nf_conntrack_acct=1", "net.netfilter.nf_conntrack_timestamp=1"} {
		if err := top.Firewall.Run("sysctl", "-qw", s); err != nil {
			t.Skipf("conntrack sysctl %s: %v", s, err)
		}
	}
	path := filepath.Join(t.TempDir(), "record.json")
	d := startDaemon(t, top, strings.Replace(recordPolicy, "%s", path, 1))
	t0 := time.Now()
	if err := dialFrom(top.Client, top.ClientIP4.String(), hostPort(top.ServerIP4, portEcho)); err != nil {
		t.Fatal(err)
	}
	if _, err := dnsQuery(top.Client, top.ServerIP4, "www.example"); err != nil {
		t.Fatal(err)
	}
	// The flow has ended (FIN both ways); conntrack forgets it when its
	// garbage collection gets to it, which may take a minute: make it now.
	time.Sleep(300 * time.Millisecond)
	if out, err := top.Firewall.Output("conntrack", "-D", "-p", "tcp", "--dport", "9000"); err != nil {
		t.Fatalf("conntrack -D: %v %s", err, out)
	}
	var recs []map[string]any
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs = readRecords(t, path)
		flows := 0
		for _, r := range recs {
			if r["event_type"] == "flow" && r["proto"] == "TCP" {
				flows++
			}
		}
		if flows > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	var dec, flow, dns map[string]any
	for _, r := range recs {
		switch {
		case r["event_type"] == "decision" && r["rule"] == "echo" && dec == nil:
			dec = r
		case r["event_type"] == "flow" && r["rule"] == "echo":
			flow = r
		case r["event_type"] == "decision" && r["rule"] == "trial-dns" && dns == nil:
			dns = r
		}
	}
	if dec == nil || flow == nil || dns == nil {
		t.Fatalf("records (want the echo decision and flow, the dns decision):\n%v", recs)
	}
	ts, err := time.Parse(time.RFC3339Nano, dec["timestamp"].(string))
	if err != nil || ts.Before(t0.Add(-time.Second)) || ts.After(time.Now()) {
		t.Errorf("timestamp %v %v", dec["timestamp"], err)
	}
	want := map[string]any{"event_type": "decision", "queue": 3.0, "rule": "echo", "action": "accept",
		"ip_version": 4.0, "proto": "TCP", "src_ip": top.ClientIP4.String(), "dest_ip": top.ServerIP4.String(),
		"dest_port": 9000.0, "in_iface": "fw-c", "out_iface": "fw-s", "cached": false, "offloaded": false}
	for k, v := range want {
		if dec[k] != v {
			t.Errorf("decision %s = %v, want %v", k, dec[k], v)
		}
	}
	if sp, _ := dec["src_port"].(float64); sp < 1024 || dec["length"].(float64) < 40 {
		t.Errorf("decision src_port %v length %v", dec["src_port"], dec["length"])
	}
	want["event_type"] = "flow"
	want["src_port"] = dec["src_port"]
	for k, v := range want {
		if flow[k] != v {
			t.Errorf("flow %s = %v, want %v", k, flow[k], v)
		}
	}
	f, _ := flow["flow"].(map[string]any)
	// The echo: SYN, ACK, data, FIN and ACKs each way; 1 byte of data.
	for _, k := range []string{"pkts_toserver", "pkts_toclient"} {
		if n, _ := f[k].(float64); n < 3 || n > 10 {
			t.Errorf("flow.%s = %v", k, f[k])
		}
	}
	for _, k := range []string{"bytes_toserver", "bytes_toclient"} {
		if n, _ := f[k].(float64); n < 150 || n > 1000 {
			t.Errorf("flow.%s = %v", k, f[k])
		}
	}
	start, err1 := time.Parse(time.RFC3339Nano, f["start"].(string))
	end, err2 := time.Parse(time.RFC3339Nano, f["end"].(string))
	dur, _ := f["duration"].(float64)
	if err1 != nil || err2 != nil || start.Before(t0.Add(-time.Second)) || end.Before(start) || dur < 0 || dur > 15 ||
		end.Sub(start).Seconds()-dur > 0.001 {
		t.Errorf("flow times %v", f)
	}
	if dns["alert"] != "drop" || dns["action"] != "accept" || dns["proto"] != "UDP" || dns["dest_port"] != 53.0 {
		t.Errorf("dns decision %v", dns)
	}
	if n, _ := dns["dns"].(map[string]any); n == nil || n["rrname"] != "www.example" {
		t.Errorf("dns name %v", dns["dns"])
	}
	if b, err := os.ReadFile(path); err == nil {
		t.Logf("record:\n%s", b)
	}
	st := d.status()
	if st.Record == nil || st.Record.Written < 3 || st.Record.Flows < 1 || st.Record.Dropped != 0 {
		t.Errorf("record stats %+v", st.Record)
	}
	// logrotate: move the file away, SIGUSR1, the next records go to a new file.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	d.signal(syscall.SIGUSR1)
	time.Sleep(300 * time.Millisecond)
	if err := dialFrom(top.Client, top.ClientIP4.String(), hostPort(top.ServerIP4, portEcho)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if len(readRecords(t, path)) > 0 {
			return
		}
	}
	t.Error("no record in the reopened file after SIGUSR1")
}

func readRecords(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("record line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}
