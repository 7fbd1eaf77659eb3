// Package bench is qguard's benchmark harness: it builds a throwaway
// client -> firewall -> server topology, floods it, and measures qguard's
// queue engine side by side with its peers (kernel forwarding alone, a
// minimal C handler on libnetfilter_queue, go-nfqueue v2) in one run on one
// machine.
//
// Run takes a Config (nil means defaults) and returns a Report; the report
// prints as a table (WriteTable), as JSON (WriteJSON) and as an SVG bar chart
// (WritePlot). `qguard bench` is a thin command over it.
//
// # What is measured
//
// For each mode: packets per second sent by the generator and delivered to
// the sink, the kernel's queue_dropped and user_dropped counters (read
// inside the firewall namespace), the handler's CPU time per handled packet
// (process CPU clock for peer processes, thread CPU clock for qguard's
// in-process queue threads), and the median and 99th percentile round trip
// of a low-rate UDP echo through the firewall both ways. Each qguard mode is
// also given as a ratio to the C peer and to kernel-only forwarding.
//
// # Privileges
//
// Run needs root: it creates network namespaces, installs netfilter rules
// inside its own firewall namespace, and binds queues there. It never
// touches the caller's namespace.
//
// # Concurrency
//
// Run runs one mode at a time. Generator, sink and handler threads are
// pinned to the CPUs named in Config (by default the handler alone on the
// last CPU and everything else on the first) and the pinning is reported.
package bench
