package e2e

import (
	"fmt"
	"net"
	"testing"
	"time"
)

const alertPolicy = `
queue: {num: 3}
rules:
  offload: false
metrics: {listen: "127.0.0.1:9477"}
policy:
  default: accept
  rules:
    - name: trial-echo
      match: {proto: tcp, dport: [9000]}
      action: alert
    - name: trial-sink
      match: {proto: udp, dport: [9001]}
      action: alert
      alert_as: reject
    - name: echo
      match: {proto: tcp, dport: [9000]}
      action: drop
`

// TestIntegrationAlert trials rules on traffic: every connection and
// datagram the alert rules match gets through (the drop rule after them is
// never reached), every flow's decision is logged as would-drop or
// would-reject, and status and metrics count the alert hits apart from
// enforced verdicts.
func TestIntegrationAlert(t *testing.T) {
	top := newTopo(t, "qal")
	servers(t, top)
	d := startDaemon(t, top, alertPolicy)
	const flows = 4
	for i := 0; i < flows; i++ {
		if err := dialFrom(top.Client, top.ClientIP4.String(), hostPort(top.ServerIP4, portEcho)); err != nil {
			t.Fatalf("connection %d under an alert rule: %v", i, err)
		}
	}
	udpSink := listenPacketIn(t, top.Server, "udp", fmt.Sprintf("[::]:%d", portUDPSink))
	for i := 0; i < flows; i++ {
		if err := top.Client.Do(func() error {
			c, err := net.Dial("udp", hostPort(top.ServerIP6, portUDPSink))
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("trial"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		udpSink.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 16)
		if n, _, err := udpSink.ReadFrom(buf); err != nil || string(buf[:n]) != "trial" {
			t.Fatalf("datagram %d under an alert rule: %q %v", i, buf[:n], err)
		}
	}
	st := d.status()
	var hits = map[string]uint64{}
	for _, r := range st.Rules {
		hits[r.Name] = r.Hits
		if r.Name == "trial-sink" && (r.Action != "alert" || r.AlertAs != "reject") {
			t.Errorf("trial-sink stats %+v", r)
		}
	}
	q := st.Queues[0]
	if q.Dropped != 0 || q.Rejected != 0 || hits["echo"] != 0 {
		t.Errorf("something enforced: %+v, echo hits %d", q, hits["echo"])
	}
	if q.AlertDrop != hits["trial-echo"] || q.AlertDrop < flows*4 || q.AlertReject != hits["trial-sink"] || q.AlertReject != flows {
		t.Errorf("alert counts drop %d reject %d, rule hits %v", q.AlertDrop, q.AlertReject, hits)
	}
	m := scrape(t, top.Firewall, "127.0.0.1:9477")
	if m[`qguard_alerts_total{queue="3",would="drop"}`] != float64(q.AlertDrop) || m[`qguard_alerts_total{queue="3",would="reject"}`] != float64(flows) {
		t.Errorf("metrics: drop %v reject %v", m[`qguard_alerts_total{queue="3",would="drop"}`], m[`qguard_alerts_total{queue="3",would="reject"}`])
	}
	logged := map[string]int{}
	for _, l := range jsonLines(d.log.String(), "decision") {
		if l["action"] != "accept" {
			t.Errorf("decision line %v", l)
		}
		logged[fmt.Sprint(l["rule"], " ", l["alert"])]++
	}
	if logged["trial-echo drop"] != flows || logged["trial-sink reject"] != flows || len(logged) != 2 {
		t.Errorf("decision lines %v, want %d of each", logged, flows)
	}
}
