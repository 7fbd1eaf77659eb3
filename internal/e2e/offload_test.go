package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// offloadYAML queues everything (mode queue-all): the test is about flows
// that user space hands to the kernel.
const offloadYAML = `
rules: {mode: queue-all}
policy:
  default: accept
  rules:
    - name: echo-flow
      match: {proto: tcp, dport: [9000]}
      action: accept
      flow: true
    - name: alt-http-dropflow
      match: {proto: tcp, dport: [8081]}
      action: drop
      flow: true
    - name: tripwire
      match: {proto: udp, dport: [9002]}
      action: drop
      block_source: 1m
`

// TestIntegrationOffloadAndBlock: a flow decided as a whole is handed to the
// kernel (qguard sees its first packet only), and block_source puts the
// sender in the kernel block set so that its later traffic never reaches
// the queue.
func TestIntegrationOffloadAndBlock(t *testing.T) {
	top := newTopo(t, "qeo")
	servers(t, top)
	d := startDaemon(t, top, offloadYAML)

	c, err := dialIn(top.Client, "tcp", hostPort(top.ServerIP4, portEcho), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 20 {
		if err := echo(c, fmt.Sprintf("msg-%02d", i)); err != nil {
			t.Fatalf("echo %d over an offloaded flow: %v", i, err)
		}
	}
	st := d.status()
	q := st.Queues[0]
	// 20 round trips are at least 40 segments plus the handshake; with the
	// flow offloaded qguard sees the SYN and little else.
	if q.Offloaded == 0 || q.Packets > 6 {
		t.Errorf("offload: %d packets reached qguard, %d offloaded; want the flow decided in the kernel", q.Packets, q.Offloaded)
	}
	t.Logf("offloaded flow: %d packets reached qguard for 20 round trips, %d offloaded", q.Packets, q.Offloaded)
	if err := httpGet(top.Client, hostPort(top.ServerIP6, portHTTPAlt)); err == nil {
		t.Error("drop-flow rule let HTTP through")
	}

	before := d.status().Queues[0].Packets
	u, err := dialIn(top.Client, "udp", hostPort(top.ServerIP4, 9002), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("trip"))
	u.Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		out, _ := top.Firewall.Output("nft", "list", "set", "inet", "qguard", "block4")
		if strings.Contains(out, top.ClientIP4.String()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client not in the block set after the tripwire:\n%s\n%s", out, d.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ping(top.Client, top.ServerIP4.String(), 1) == nil {
		t.Error("blocked source can still ping")
	}
	if err := ping(top.Client, top.ServerIP6.String(), 1); err != nil {
		t.Errorf("only the IPv4 source is blocked, IPv6 should pass: %v", err)
	}
	after := d.status()
	if got := after.Queues[0].Packets - before; got != 1+2 { // the tripwire, one IPv6 echo and its reply
		t.Errorf("%d packets reached qguard after the block, want 3 (blocked ones stop in the kernel)", got)
	}
	if after.BlockQueued != 1 || after.BlockErrors != 0 {
		t.Errorf("block requests: queued %d errors %d", after.BlockQueued, after.BlockErrors)
	}
}
