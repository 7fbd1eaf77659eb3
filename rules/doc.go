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
//  1. drops for sources in the block sets "block4" and "block6" (elements
//     carry timeouts; Manager.BlockSource adds them at run time);
//  2. with Config.Offload, accept/drop for flows whose conntrack mark (under
//     Marks.Mask) says AcceptFlow/DropFlow, so later packets of a decided flow
//     never reach the queue;
//  3. the verdict-mark rules: a packet that user space re-injected with
//     NF_REPEAT and a mark under Marks.Mask is accepted (AcceptFlow), dropped
//     (DropFlow) or rejected (Reject: TCP reset, otherwise ICMP/ICMPv6 port
//     unreachable); AcceptFlow/DropFlow also merge the mark into the
//     conntrack mark under the mask when offloading;
//  4. the queue rule, with the steering matchers of Config.Steer and the
//     condition that qguard's mark bits are clear, so a re-injected packet is
//     never queued twice.
//
// # Queue expression
//
// Probe finds out how the kernel can queue: the native nftables queue
// expression (CONFIG_NFT_QUEUE) or the xtables NFQUEUE target (revision 3)
// through nftables' compat expression, which is what iptables-nft installs.
// Kernels accept the compat target in inet tables (checked on Linux 6.18 by
// experiment and by TestIntegrationCompatInet), so one inet table serves both
// paths; the family seen by the target is the packet's own.
//
// # Atomicity
//
// Apply, Replace and SteerAway each send one nf_tables batch: the kernel
// commits a batch as a whole under a new generation, and packets see either
// the old rules or the new ones, never a table half rebuilt.
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
