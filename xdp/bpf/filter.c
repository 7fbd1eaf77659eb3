// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// qguard XDP early-drop filter.
//
// The program sits at the earliest receive hook of the interfaces qguard is
// told to guard. It drops a packet when its source address is in src_blocks
// or its 5-tuple is in flow_blocks, and passes everything else untouched.
// User space (package xdp) fills the maps from the daemon's decisions,
// deletes expired entries and reads the counters.
//
// Parsing, and what is deliberately left out:
//   - Ethernet, then at most one 802.1Q / 802.1ad tag. A second tag (QinQ)
//     is not unwrapped: the packet passes as non-IP.
//   - IPv4 with options (IHL honoured). Non-first fragments carry no ports,
//     so they can match a source block but never a flow block.
//   - IPv6 plus up to MAX_EXT_HDRS extension headers of the kinds that are
//     chained with the generic (next, length) layout: hop-by-hop, routing,
//     destination options and fragment. AH, ESP and anything unknown end the
//     walk: such packets match source blocks only, with proto set to the
//     header where the walk stopped. Non-first fragments carry no ports.
//   - TCP, UDP, UDP-Lite and SCTP ports (first 4 bytes of the L4 header,
//     which must start within the first 512 bytes of the frame).
//     Other protocols (ICMP, ...) use ports 0 in the flow key, so a flow
//     entry with ports 0 matches every packet of that protocol between the
//     two addresses.
// The source map is consulted as soon as the fixed IPv4/IPv6 header is
// in, before options, extension headers or ports are read. Truncated
// headers count as parse errors and pass: the stack drops them.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MAX_EXT_HDRS 4

#ifndef ETH_P_8021Q
#define ETH_P_8021Q 0x8100
#endif
#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

// Address families as stored in keys: the IP version, like verdict.Packet.
#define FAMILY_V4 4
#define FAMILY_V6 6

// Counter slots in the per-CPU counters array. Keep in sync with stats.go.
enum {
	STAT_PASSED = 0,       // every XDP_PASS
	STAT_DROPPED_SRC = 1,  // dropped by a src_blocks entry
	STAT_DROPPED_FLOW = 2, // dropped by a flow_blocks entry
	STAT_PARSE_ERR = 3,    // truncated or malformed headers (passed)
	STAT_EXPIRED = 4,      // matched an expired entry (passed)
	STAT_NON_IP = 5,       // not IPv4/IPv6 (passed)
	STAT_MAX = 8,
};

// src_key is a source address: IPv4 in the first 4 bytes of addr, the rest
// zero. No implicit padding, so a zero-initialised key hashes the same as
// the one user space writes.
struct src_key {
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};

// flow_key is a 5-tuple; ports are in host byte order.
struct flow_key {
	__u8 family;
	__u8 proto;
	__u16 sport;
	__u16 dport;
	__u16 pad;
	__u8 src[16];
	__u8 dst[16];
};

// entry is the value of both block maps.
struct entry {
	__u64 expires_ns; // bpf_ktime_get_ns() deadline; 0 = never expires
	__u64 hits;       // packets dropped by this entry (atomic add)
};

// max_entries are defaults; user space overrides them before loading.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct src_key);
	__type(value, struct entry);
} src_blocks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, struct entry);
} flow_blocks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &slot);
	if (c)
		*c += 1;
}

static __always_inline int pass(__u32 why)
{
	if (why != STAT_PASSED)
		count(why);
	count(STAT_PASSED);
	return XDP_PASS;
}

// hit decides on a matched entry: expired entries let the packet through
// (user space deletes them), live ones count the hit and drop.
static __always_inline int hit(struct entry *e, __u32 stat)
{
	if (e->expires_ns != 0 && bpf_ktime_get_ns() >= e->expires_ns)
		return -1;
	__sync_fetch_and_add(&e->hits, 1);
	count(stat);
	return XDP_DROP;
}

static __always_inline int has_ports(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP ||
	       proto == IPPROTO_UDPLITE || proto == IPPROTO_SCTP;
}

// ipv6_walk skips extension headers. It returns the offset of the L4
// header, sets *proto and *frag (non-first fragment), or -1 if truncated.
static __always_inline int ipv6_walk(void *data, void *end, int off, __u8 *proto, int *frag)
{
	__u8 nh = *proto;

#pragma unroll
	for (int i = 0; i < MAX_EXT_HDRS; i++) {
		if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_ROUTING &&
		    nh != IPPROTO_DSTOPTS && nh != IPPROTO_FRAGMENT)
			break;
		__u8 *h = data + off;
		if ((void *)(h + 8) > end)
			return -1;
		if (nh == IPPROTO_FRAGMENT) {
			// Fragment offset: upper 13 bits of bytes 2-3.
			if (((h[2] << 8) | h[3]) & 0xfff8)
				*frag = 1;
			off += 8;
		} else {
			off += (h[1] + 1) * 8;
		}
		nh = h[0];
	}
	*proto = nh;
	return off;
}

SEC("xdp")
int qguard_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct flow_key fk = {};
	struct src_key sk = {};
	int off = sizeof(*eth);
	int frag = 0;
	__u16 h_proto;

	if ((void *)(eth + 1) > end)
		return pass(STAT_PARSE_ERR);
	h_proto = eth->h_proto;
	if (h_proto == bpf_htons(ETH_P_8021Q) || h_proto == bpf_htons(ETH_P_8021AD)) {
		// struct vlan_hdr lives in a kernel-internal header: TCI, then
		// the encapsulated ethertype.
		__be16 *vlan = data + off;
		if ((void *)(vlan + 2) > end)
			return pass(STAT_PARSE_ERR);
		h_proto = vlan[1];
		off += 4;
	}

	if (h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + off;
		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return pass(STAT_PARSE_ERR);
		sk.family = FAMILY_V4;
		__builtin_memcpy(sk.addr, &ip->saddr, 4);
		fk.proto = ip->protocol;
		__builtin_memcpy(fk.src, &ip->saddr, 4);
		__builtin_memcpy(fk.dst, &ip->daddr, 4);
		if (ip->frag_off & bpf_htons(0x1fff))
			frag = 1;
		off += ip->ihl * 4;
	} else if (h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;
		if ((void *)(ip6 + 1) > end)
			return pass(STAT_PARSE_ERR);
		sk.family = FAMILY_V6;
		__builtin_memcpy(sk.addr, &ip6->saddr, 16);
		__builtin_memcpy(fk.src, &ip6->saddr, 16);
		__builtin_memcpy(fk.dst, &ip6->daddr, 16);
		fk.proto = ip6->nexthdr;
		off += sizeof(*ip6);
	} else {
		return pass(STAT_NON_IP);
	}
	fk.family = sk.family;

	// The source decides before anything past the fixed IP header is
	// read, so a blocked source cannot slip through with mangled options,
	// extension headers or L4 headers.
	struct entry *e = bpf_map_lookup_elem(&src_blocks, &sk);
	if (e) {
		int v = hit(e, STAT_DROPPED_SRC);
		if (v >= 0)
			return v;
		count(STAT_EXPIRED);
	}

	if (fk.family == FAMILY_V6) {
		off = ipv6_walk(data, end, off, &fk.proto, &frag);
		if (off < 0)
			return pass(STAT_PARSE_ERR);
	}

	if (has_ports(fk.proto)) {
		if (frag)
			return pass(STAT_PASSED);
		// Bound the offset so the verifier can track it (IPv4 IHL and
		// IPv6 extension lengths are variable).
		if (off > 512)
			return pass(STAT_PARSE_ERR);
		__be16 *ports = data + off;
		if ((void *)(ports + 2) > end)
			return pass(STAT_PARSE_ERR);
		fk.sport = bpf_ntohs(ports[0]);
		fk.dport = bpf_ntohs(ports[1]);
	}

	e = bpf_map_lookup_elem(&flow_blocks, &fk);
	if (e) {
		int v = hit(e, STAT_DROPPED_FLOW);
		if (v >= 0)
			return v;
		count(STAT_EXPIRED);
	}
	return pass(STAT_PASSED);
}

char __license[] SEC("license") = "Dual BSD/GPL";
