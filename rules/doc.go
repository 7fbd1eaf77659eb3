// Package rules installs the nftables rules that steer traffic into qguard's
// queues, in a table of qguard's own, through netlink (google/nftables); no
// nft binary is needed at run time.
//
// # Table
//
// Everything lives in one table, family inet, named by Config.Table
// ("qguard" by default). The package never adds, changes or deletes anything
// outside it. Each configured hook gets a base chain (policy accept) named
// after the hook, or "<hook>_p<prio>" when that name is on another
// priority, whose only rule jumps to the hook's chain of the current
// policy generation: a regular chain "<hook>_g<n>" holding, in order:
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
//     instead of looping). In Mode KernelFirst a rule with the same
//     matchers and ct state new jumps first to the generation's policy
//     chain "<hook>_policy_g<n>", which holds Config.Policy compiled (see
//     compile.go): the kernel decides what it can, queues what needs user
//     space, and ends with the policy's default.
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
// (found by experiment on Linux 6.18; TestIntegrationOffload/compat steers
// IPv4 and IPv6 through it), so one inet table serves both paths and the
// target sees each packet's own family. nft lists such a table with a
// warning that it is "managed by iptables-nft"; that is only nft's view.
// With several queues and no fanout, both expressions balance by a hash of
// the address pair, not of the ports.
//
// # Atomicity
//
// A change (Apply, Replace, SteerAway) switches generations in three
// batches, each leaving one complete policy in force: (1) the new
// generation's chains and steering sets (interface sets
// "steer_iifname_g<n>", "steer_oifname_g<n>"; anonymous sets belong to
// their rules) are added, with base chains for hooks that have none yet,
// empty; (2) every base chain is flushed and given the jump to the new
// generation, in one batch; (3) the old generation's chains and sets are
// deleted. The block and drop-flow sets belong to no generation and keep
// their elements.
//
// One batch is not enough (found by experiment on Linux 6.18, see
// TestIntegrationReplaceNoWindow): interval sets (port ranges, prefixes)
// publish their elements in the set backend's commit step, after the
// kernel has switched the rule generation, so a new rule looking up a set
// new in the same batch misses for a moment; hence nothing jumps to a
// generation before the batch after the one that added it. nft_do_chain
// reads the rule generation once per base chain and follows jumps in it,
// so each packet meets the old jump and the old rules or the new jump and
// the new ones; with one base chain per hook, it is queued once.
//
// Base chains are never deleted while qguard runs, because deleting one
// unregisters its hook, and the kernel then drops every packet queued in
// every queue of the namespace (nf_queue_nf_hook_drop). A hook that leaves
// the configuration, or moves to another priority, keeps its old chain,
// emptied (policy accept), until Remove, which the daemon calls after the
// queues were drained and unbound; a chain on the new priority is added
// beside it. A table left by an earlier run, of this layout or of the
// previous one (rules directly in the base chains, shadow chains
// "<hook>_reload"), is taken over the same way: matching base chains are
// refilled with the jump, the others emptied, every regular chain and
// steering set but the new generation's deleted. A batch that fails
// leaves the previous policy in force; a leftover is deleted by the next
// change. Manager.Chains lists the chains the table should hold.
//
// Moving a hook to another priority registers a hook while packets may be
// queued: a packet queued by the old chain and accepted after the switch
// goes on to the later hooks, the new chain among them if it is on a later
// priority, and is queued again; nf_reinject resumes at the hook index the
// packet left, so a chain registered on an earlier priority shifts that
// index and the packet meets the old (emptied) chain once more. Neither
// loses a packet. Renaming the table (Replace with another Table) deletes
// the old table once the new one is in force, which does unregister its
// hooks; the daemon only renames across a restart.
//
// # Guard and ownership
//
// Manager.Guard watches nftables notifications and verifies the table
// against the state the Manager's last own change recorded (under its
// lock, so an own change is never mistaken for a foreign one); a
// difference is logged, counted and, with GuardOptions.Repair, undone by
// Apply. ClaimTable makes one process the table's owner in its network
// namespace through an abstract unix socket named after the table;
// TableHolder names the owner.
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
