package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
)

// TestIntegrationQueueRange: --queue N:M binds several queues and the rules
// spread traffic over them. The kernel's NFQUEUE balancing hashes the
// addresses only (not the ports), so the client sends from many addresses.
func TestIntegrationQueueRange(t *testing.T) {
	testutil.NeedRoot(t, "namespaces, nftables, NFQUEUE")
	var srcs []netip.Addr
	for i := range 16 {
		srcs = append(srcs, netip.AddrFrom4([4]byte{198, 18, 1, byte(10 + i)}))
	}
	top := buildTopo(t, &topo.Options{Prefix: "qeq", ExtraClientAddrs: srcs})
	sink := listenPacketIn(t, top.Server, "udp", fmt.Sprintf("[::]:%d", portUDPSink))
	got := make(chan struct{}, 64)
	go func() {
		buf := make([]byte, 64)
		for {
			if _, _, err := sink.ReadFrom(buf); err != nil {
				return
			}
			got <- struct{}{}
		}
	}()
	d := startDaemon(t, top, "", "--queue", "2:3")
	flows := len(srcs)
	for i, src := range srcs {
		var c net.Conn
		err := top.Client.Do(func() (err error) {
			d := net.Dialer{LocalAddr: &net.UDPAddr{IP: src.AsSlice()}}
			c, err = d.Dial("udp", hostPort(top.ServerIP4, portUDPSink))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "%d", i)
		c.Close()
	}
	for i := range flows {
		select {
		case <-got:
		case <-time.After(2 * time.Second):
			t.Fatalf("%d of %d datagrams arrived", i, flows)
		}
	}
	st := d.status()
	if len(st.Queues) != 2 || st.Queues[0].Queue != 2 || st.Queues[1].Queue != 3 {
		t.Fatalf("queues %+v", st.Queues)
	}
	a, b := st.Queues[0].Packets, st.Queues[1].Packets
	t.Logf("queue 2: %d packets, queue 3: %d", a, b)
	if a+b != uint64(flows) || a == 0 || b == 0 {
		t.Errorf("queue 2 saw %d packets, queue 3 saw %d: want %d spread over both", a, b, flows)
	}
}
