// Package queue is qguard's nfnetlink_queue engine: it binds NFQUEUE queues,
// receives queued packets into a reusable buffer without allocating, hands
// each one to a handler as a caller-owned Packet value, and returns the
// verdicts in batches.
//
// # Receive and verdict path
//
// The path is hand-written netlink on
// golang.org/x/sys/unix: one netlink socket and one goroutine per queue,
// locked to its OS thread, recvmmsg(2) to read many packet messages per
// system call, and one sendmsg per batch of verdicts. A run of in-order
// packets that share verdict and mark collapses into one
// NFQNL_MSG_VERDICT_BATCH message.
//
// Why recvmmsg: the kernel builds one skb per queued packet
// (nfqnl_build_packet_message) and a netlink recvmsg returns one skb, so a
// large recvmsg buffer still yields one packet per call (docs/DESIGN.md
// has the measurement). recvmmsg with MSG_WAITFORONE
// returns everything waiting, up to Config.BatchSize, in one call; each
// vector slot holds CopyRange plus 4 KiB of attributes.
//
// # Verdicts
//
// Every packet the engine receives gets exactly one verdict: the one the
// handler set, or Config.DefaultVerdict when the handler set none, panicked,
// or the packet could not be decoded. Verdicts are flushed when the socket
// runs dry, when BatchSize verdicts are pending and when the oldest pending
// verdict is older than FlushInterval, so no packet waits for a batch to
// fill.
//
// # Overload and absence
//
// When the kernel queue holds Config.MaxLen packets, further packets are
// dropped (Stats.Kernel.QueueDropped), or accepted unseen with
// FlagFailOpen. When the socket's receive buffer is full, the kernel drops
// the packet (or accepts it, with FlagFailOpen) and counts it in
// Kernel.UserDropped; the loop counts the ENOBUFS report and carries on.
// When no program has bound a queue, the queueing rule decides: with
// iptables' --queue-bypass (nft "queue ... bypass") packets pass, without it
// they are dropped. QueueTo's bypass flag makes the same choice for a
// packet handed to an unbound queue.
//
// # Shutdown
//
// Close (or cancelling Run's context) first quiesces each queue: it sets the
// kernel's queue length to 0, so every new packet finds the queue full and
// is accepted unqueued (FlagFailOpen) or dropped, while the packets already
// queued still take verdicts; it reads until the socket is empty (the kernel
// applied the limit before the request returned, so nothing more comes) and
// verdicts them all. Only then does it unbind: the kernel drops every packet
// still queued when a queue is unbound. With FlagFailOpen a stop loses
// nothing. Quiesce does the first half alone, for a caller that must act
// before the unbind (removing a netfilter hook drops every packet queued in
// the namespace, which costs nothing once the queues are quiesced). A kernel
// that refuses the limit gets the old drain: read until the socket stays
// idle for DrainIdle (or DrainTimeout passes).
//
// # Privileges
//
// Binding a queue needs CAP_NET_ADMIN in the socket's network namespace;
// forcing the socket receive buffer (SO_RCVBUFFORCE) needs CAP_NET_ADMIN in
// the initial user namespace and falls back to SO_RCVBUF. The socket belongs
// to the network namespace of the thread that calls Open; it keeps that
// namespace afterwards, so Open inside netns.Do and Run anywhere.
//
// # Concurrency
//
// Each queue runs its handler on its own goroutine, locked to its OS thread
// (pinned to Config.CPUs when set). A handler for several queues is called
// concurrently, once per queue at a time; the Packet and its Payload belong
// to that call and must not be kept after it returns. Stats and Close may be
// called from any goroutine.
//
// # Kernel interface
//
// Messages follow include/uapi/linux/netfilter/nfnetlink_queue.h and
// include/uapi/linux/netfilter/nfnetlink.h; kernel behaviour referred to in
// comments is net/netfilter/nfnetlink_queue.c.
package queue
