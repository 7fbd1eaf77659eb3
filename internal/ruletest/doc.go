// Package ruletest runs declarative policy tests against a real kernel: each
// test file names a qguard policy and cases ("a TCP connect to port 23 from
// 198.18.1.2 is rejected by rule block-telnet"), and the runner builds a
// throwaway client -> firewall -> server topology, starts qguard's queue
// engine and nftables rules inside the firewall namespace, sends the real
// traffic from the client namespace and checks what happened.
//
// # Files
//
// Parse reads one YAML test file and reports every problem with
// file:line:column. docs/ruletest.md describes the format.
//
// # Outcomes
//
// A probe ends in one of delivered (the server answered), dropped (nothing
// came back before the timeout), rejected (a TCP reset or an ICMP
// unreachable reached the client) or modified (delivered, and the firewall
// saw the packet leave towards the server carrying a mark set by the
// policy). Anything else (a TLS handshake error, a wrong answer) is an error
// and fails the case.
//
// # Privileges
//
// Running files needs root: namespaces, veth links, nftables and
// nfnetlink_queue. Parsing does not.
//
// # Concurrency
//
// Files run in parallel (Options.Jobs); cases within a file run
// concurrently unless the file says `parallel: false` or a case checks
// metric deltas, which need the engine to themselves.
package ruletest
