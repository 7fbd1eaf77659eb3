// Package rules installs the nftables rules that steer traffic into qguard's
// queues, in a table of qguard's own, through netlink (google/nftables); no
// nft binary is needed at run time.
//
// # Table
//
// Everything lives in one table, family inet, named by Config.Table
// ("qguard" by default). The package never adds, changes or deletes anything
// outside it. Each configured hook gets a base chain named after the hook
// (policy accept) holding, in order:
//
//  1. drops for sources in the sets "block4" and "block6" (elements carry
//     timeouts; Manager.BlockSource adds them at run time);
//  2. with Config.Offload, accept/drop for flows whose conntrack mark (under
//     Marks.Mask) says AcceptFlow/DropFlow, so later packets of a decided
//     flow, in both directions, never reach the queue; then drops for flow
//     tuples in "dropflow4"/"dropflow6" (see below);
//  3. the verdict-mark rules: a packet that user space re-injected with
//     NF_REPEAT and a mark under Marks.Mask is accepted (AcceptFlow), dropped
//     (DropFlow) or rejected (Reject: TCP reset, otherwise ICMP/ICMPv6 port
//     unreachable via icmpx; at postrouting, where the kernel has no reject,
//     dropped). With Offload, AcceptFlow and DropFlow are merged into the
//     conntrack mark under the mask: ct mark = ct mark &^ Mask | value;
//  4. accept for the kernel's own answer to a packet it rejects (TCP
//     reset, ICMP error: ct state related, reply direction, conntrack entry
//     not confirmed): it carries the rejected packet's unconfirmed entry,
//     and nfnetlink_queue drops a packet whose unconfirmed entry another
//     packet still holds, so queued, the answer would be lost and the
//     sender would never learn of the refusal;
//  5. the queue rule, with the matchers of Config.Steer and the condition
//     that qguard's mark bits are clear, so a re-injected packet is never
//     queued again (an unknown value under the mask falls through to accept
//     instead of looping).
//
// The verdict itself carries only the packet mark (no connmark through
// NFQA_CT, which kernels without CONFIG_NETFILTER_NETLINK_GLUE_CT ignore).
// Use Marks.Set to put a value under the mask without disturbing other bits.
//
// A packet dropped before its conntrack entry is confirmed (the first
// packet of a flow, decided at once) takes the entry and its mark with it,
// so the DropFlow rule also adds the flow's tuple (addresses, protocol,
// ports) to a dynamic set with Config.FlowTimeout; later packets, such as
// retransmitted SYNs, are dropped by lookup without a queue round trip.
//
// # Queue expression
//
// Probe finds out how the kernel can queue: the native nftables queue
// expression (CONFIG_NFT_QUEUE) or the xtables NFQUEUE target (revision 3,
// struct xt_NFQ_info_v3 in host byte order, padded to 8 bytes) through
// nftables' compat expression, which is what iptables-nft installs. Each
// probe is one batch that adds a throwaway table, chain and rule and deletes
// the table again. The kernel accepts the compat target in an inet table
// (found by experiment on Linux 6.18; TestIntegrationOffloadCompat steers
// IPv4 and IPv6 through it), so one inet table serves both paths and the
// target sees each packet's own family. nft lists such a table with a
// warning that it is "managed by iptables-nft"; that is only nft's view.
// With several queues and no fanout, both expressions balance by a hash of
// the address pair, not of the ports.
//
// # Atomicity
//
// A fresh install is one nf_tables batch. A reload (Replace, SteerAway, or
// Apply over a table left behind) is not, because one batch does not swap
// a policy atomically (found by experiment on Linux 6.18, see
// TestIntegrationReplaceNoWindow): interval sets (port ranges, prefixes)
// publish their elements in the set backend's commit step, after the
// kernel has switched the rule generation, so a new rule looking up a set
// new in the same batch misses for a moment and the packet meets the
// chain's accept policy; and nft_do_chain reads the generation once per
// base chain, so a packet crossing two chains while it switches can meet
// the new chain's empty old rules and then the old chain's emptied new
// ones. A reload is therefore make-before-break, three batches that each
// leave one complete, unchanged copy of the policy on every hook: shadow
// chains "<hook>_reload" with the new rules are added beside the old
// chains; the chains named after the hooks are refilled (re-created where
// the hook or priority changed); the shadow chains are deleted. A renamed
// table is built complete before the old one is deleted. While two copies
// are installed a packet may be queued twice (user space accepts it in
// one chain and the other queues it again); none passes unqueued. A batch
// that fails leaves the previous copy in force; shadow chains left by a
// failure are deleted by the next reload. Unregistering a hook (a chain
// deleted) makes nfnetlink_queue drop the packets waiting in the queues at
// that moment: dropped, never let through.
//
// # Privileges
//
// Installing rules needs CAP_NET_ADMIN in the target network namespace.
//
// # Concurrency
//
// A Manager's methods may be called from several goroutines; they are
// serialised by a mutex.
package rules
