// Package testutil is qguard's shared test support, in the manner of
// cilium/ebpf's internal/testutils: one place for the checks and helpers
// several packages' tests need, so they do not drift apart.
//
// # Privileges
//
// Tests that create namespaces, install nftables rules, bind queues or
// load BPF programs call NeedRoot first and are named TestIntegration*.
package testutil
