// Package bench is qguard's benchmark harness: it builds a throwaway
// client -> firewall -> server topology, floods it, and measures qguard's
// queue engine side by side with its peers (kernel forwarding alone, a
// minimal C handler on libnetfilter_queue, go-nfqueue v2) in one run on one
// machine.
//
// A mode (Mode, listed by AllModes) is a typed value: what it is (name,
// group, family, traffic) and what it does, a start function that launches
// its handler and a measure function that runs its phases. The daemon modes
// (group daemon) run `qguard run` itself in the firewall namespace with a
// configuration file written for the mode and its own nftables table:
// observe, a 100-rule policy, L7 rules, flow offload and kernel-first. The
// library modes run qguard's queue engine in a small process beside the C
// and go-nfqueue peers; where they run a policy it is internal/engine's own
// packet handler on an offline engine.
//
// Run takes a Config (nil means defaults) and returns a Report; the report
// prints as text (WriteTable: one table per traffic kind, at most 120
// columns), as JSON (WriteJSON) and as an SVG chart (Plot, WritePlot: a
// panel per traffic kind, flood and drain side by side, bars coloured by
// family, min..max over runs as whiskers). `qguard bench` is a thin
// command over it. testdata/report.json is a saved report; the golden
// files beside it are what WriteTable and Plot make of it (go test
// ./bench -run Golden -update rewrites them).
//
// # What is measured
//
// For each mode: packets per second sent by the generator and delivered to
// the sink, the kernel's queue_dropped and user_dropped counters (read
// inside the firewall namespace), the handler's CPU time per handled packet
// (the handler process's CPU clock), and the median and 99th percentile round trip
// of a low-rate UDP echo through the firewall both ways. Each qguard mode is
// also given as a ratio to the C peer and to kernel-only forwarding.
//
// # TCP as applications send it
//
// The :tcp modes run bulk streams (Config.TCPConns) written and read with
// Go's net package, client in the client namespace and reader in the
// server's, in Gbit/s; the :conn modes open short connections back to back
// (Config.ConnWorkers clients: connect, a 64-byte request, a 64-byte
// reply, the server's close), in connections per second, so the
// handshake and first data of every flow cross the queue. Every handler
// there asks for GSO super-packets whole (NFQA_CFG_F_GSO: the C peer's
// "gso" argument, go-nfqueue's NfQaCfgFlagGSO, queue.FlagGSO; the daemon
// by its default queue.gso), as a deployment would; :tcp-nogso shows the
// same stream with every super-packet segmented before it is queued.
//
// # Drain phase: the handler's capacity
//
// On a small machine the flood is capped by the generator's CPU, which also
// carries the firewall's queueing work (building and queueing each packet
// message): every handler that keeps up then delivers the same rate, and the
// flood cannot rank them. The drain phase can: with the handler process
// stopped (SIGSTOP) the generator queues a burst (DrainBurst, at most the
// mode's queue length); the handler is resumed and its steady rate timed,
// from a thread on the idle generator CPU reading
// /proc/net/netfilter/nfnetlink_queue, between the first look at or below
// 90% of the burst still waiting and the first at or below 10% (so the
// resume from SIGSTOP is not counted); the queue must then empty and the
// sink must have counted every frame the generator sent. A burst starts
// from an empty queue; one whose lost frames were all pushed out of the
// full queue by foreign packets (the steering queues all forwarded UDP:
// the latency probe's late echoes) is run again and counted
// (Sample.DrainDisturbed, DrainForeign); any other short count fails the
// mode with every counter of the loss named.
// The rate is the handler's CPU alone: its receive, its verdicts, and the
// kernel's reinjection and forwarding its verdict system calls carry out.
// go-nfqueue keeps its README's queue length of 255, so its bursts are that
// long. Runs interleave modes, and the report pairs every mode with the C
// peer run by run, so the spread of those ratios is the comparison's own
// noise.
//
// # Cost at a fixed load
//
// At offered rates well under every handler's capacity (Config.LoadRates,
// default 50k and 150k packets/s) the generator is paced and the whole
// firewall's CPU per packet is read from nanosecond clocks: the
// generator's thread (the firewall's softirq work runs in its context on
// veth) minus its own sending (calibrated with frames dropped on arrival),
// the ksoftirqd threads, and the handler process. Kernel-only forwarding is
// the floor; every mode is reported as a ratio to it, and with the queue's
// id_sequence (how many packets the queue received). The method and its
// limits are described in cost_linux.go.
//
// # Generator and sink
//
// On a small machine the generator and sink share a CPU, so their cost per
// packet caps what any fast mode can show. The UDP generator therefore
// writes prebuilt Ethernet frames (correct IPv4/IPv6 and UDP checksums,
// one frame per flow per batch, the firewall's MAC as destination) to the
// client's link through an AF_PACKET socket with PACKET_QDISC_BYPASS, one
// sendmmsg per batch, instead of one connected UDP socket per flow; and the
// sink counts the flood port with an nftables counter-and-drop rule at its
// link's ingress hook instead of reading sockets. A packet counts as
// delivered when it reaches the sink's interface, as with a socket sink,
// minus the sink's own IP/UDP receive. Either falls back to the socket version when
// it cannot be used (Config.Generator, Config.Sink choose), and the report
// header names what ran. The latency echo and the TCP loads always use
// real sockets.
//
// # Privileges
//
// Run needs root: it creates network namespaces, installs netfilter rules
// inside its own firewall namespace (through google/nftables; no iptables
// or nft process runs), and binds queues there. It never touches the
// caller's namespace.
//
// # Handler processes
//
// Every handler runs as its own process inside the firewall namespace: the
// C peer, go-nfqueue (`qguard bench peer-gonfqueue`) and qguard's queue
// engine itself (QGuardPeer, `qguard bench peer-qguard`), as the daemon is
// deployed. Each prints "ready" once bound and drains and exits on SIGTERM.
// Its CPU time is the whole process's, runtime threads and garbage
// collector included, measured the same way for all three, and nothing of
// the harness (generator, sink, their goroutines, its garbage collector)
// shares its process.
//
// # Concurrency
//
// Run runs one mode at a time. Generator, sink and handler threads are
// pinned to the CPUs named in Config (by default the handler alone on the
// last CPU and everything else on the first) and the pinning is reported.
package bench
