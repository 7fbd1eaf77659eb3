package main

import (
	"fmt"
	"io"
	"time"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/internal/service"
	"github.com/vishvananda/netlink"
)

// controlSocket is the running daemon's control socket: the configuration's,
// else the default.
func controlSocket(path string) string {
	if path != "" {
		if f, err := config.Load(path); err == nil {
			return service.ControlPath(f.Control.Socket)
		}
	}
	return service.DefaultControlPath()
}

// showXDP prints where XDP programs are attached: the kernel's view of every
// interface in this namespace (qguard's or not), then what a running qguard
// says it attached and dropped.
func showXDP(w io.Writer, socket string) error {
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("list interfaces: %w", err)
	}
	fmt.Fprintln(w, "\nxdp:")
	n := 0
	for _, l := range links {
		x := l.Attrs().Xdp
		if x == nil || !x.Attached {
			continue
		}
		n++
		fmt.Fprintf(w, "  %s: program id %d, %s\n", l.Attrs().Name, x.ProgId, xdpMode(x.AttachMode))
	}
	if n == 0 {
		fmt.Fprintln(w, "  no XDP program attached in this namespace")
	}
	r, err := service.Call(socket, "status", 2*time.Second)
	switch {
	case err != nil:
		fmt.Fprintf(w, "  qguard daemon: not reachable at %s\n", socket)
	case r.Status == nil || len(r.Status.XDP) == 0:
		fmt.Fprintln(w, "  qguard daemon: running, no XDP attached (xdp.interfaces empty or fallback to nftables sets)")
	default:
		fmt.Fprintf(w, "  qguard daemon: attached on %v; dropped %d by source, %d by flow\n",
			r.Status.XDP, r.Status.XDPDroppedSource, r.Status.XDPDroppedFlow)
	}
	return nil
}

// xdpMode names IFLA_XDP_ATTACHED values (include/uapi/linux/if_link.h).
func xdpMode(m uint32) string {
	switch m {
	case 1:
		return "native (driver)"
	case 2:
		return "generic (skb)"
	case 3:
		return "offloaded (hardware)"
	case 4:
		return "several modes"
	}
	return fmt.Sprintf("mode %d", m)
}
