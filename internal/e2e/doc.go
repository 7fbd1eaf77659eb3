// Package e2e holds end-to-end tests of the qguard binary: it is built once,
// run as `qguard run` inside the firewall namespace of a client -> firewall
// -> server topology (internal/topo), and judged by real traffic: ping, HTTP,
// DNS and TLS over IPv4 and IPv6, UDP streams with sequence numbers, and the
// daemon's own metrics endpoint and control socket.
//
// # Privileges
//
// Every test needs root (namespaces, nftables, NFQUEUE) and skips without it.
// Each test builds its own namespaces (prefix "qe") and removes them.
package e2e
