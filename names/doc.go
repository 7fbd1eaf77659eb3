// Package names ties the addresses DNS answers give to the names asked
// for, so that a policy can match a packet by the name its address was
// resolved from (the dst_name and src_name matchers).
//
// # What binds
//
// [ParseQuery] and [ParseAnswer] read DNS queries and responses (RFC 1035)
// without allocating. A [Table] remembers each query it is shown (flow,
// ID, question) for a short while; an answer binds addresses only when it
// matches such a pending query on the reversed flow and consumes it, so a
// spoofed or unsolicited answer binds nothing. The A and AAAA records of
// the answer section reached from the question through its CNAME chain
// bind to the question name and to every name of the chain; the authority
// and additional sections are never trusted.
//
// # Lifetime and bounds
//
// A binding lives for its record's TTL, clamped to [Config.MinTTL] and
// [Config.MaxTTL]; at most [Config.MaxBindings] are kept, the one that
// expires first giving way to a new one. Pending queries live in a fixed
// array of [Config.MaxPending] slots.
//
// # Concurrency
//
// A Table is safe for concurrent use: the pipelines of every queue feed
// and read the same one. [Table.Match], the per-packet lookup, does not
// allocate. New and refreshed bindings are also offered to a bounded
// channel ([Table.Updates]) for a goroutine that mirrors them into kernel
// sets; a full channel drops the update and counts it, never blocking the
// packet's verdict.
package names
