// Package verdict decides what happens to each queued packet: it decodes the
// packet, extracts the names that application protocols reveal in the first
// bytes of a flow, evaluates the policy and remembers per-flow decisions.
//
// # Decoding
//
// [Decode] fills a caller-owned [Packet] from an IPv4 or IPv6 packet:
// options and fragments, IPv6 extension header chains of any length, TCP,
// UDP, UDP-Lite, ICMP, ICMPv6, SCTP and DCCP ports. It never allocates and
// never panics; malformed input sets Packet.Invalid to a [Reason]. Slices in
// a Packet point into the decoded buffer.
//
// # Application-layer names
//
// [DNSQueryName] and [DNSQuestions] read DNS question names over UDP and
// TCP, [TLSServerName] reads the server name of a TLS ClientHello, and
// [HTTPHost] reads the Host of an HTTP/1.x request. Names are written
// lowercased into caller buffers, so extraction allocates nothing. A
// ClientHello that spans several TCP segments is collected in a
// [HelloBuffer], a bounded buffer owned by the flow. [QUICHello] reads the
// server name from a QUIC client's Initial packets (versions 1 and 2),
// decrypting them with the keys their connection ID determines and
// reassembling the ClientHello from CRYPTO frames in any order.
// The pipeline follows TCP DNS streams and HTTP/1.x connections message
// by message (framing, request bodies, keep-alive), so that every message
// is judged.
//
// # Payload patterns
//
// [Patterns] matches many byte strings at once, case-sensitive or not, with
// a deterministic automaton built once by [CompilePatterns].
//
// # Policy and pipeline
//
// [Compile] turns a [Policy] (an ordered list of rules and a default action)
// into a [Compiled] policy; a [Pipeline] decodes each packet, runs user
// [Stage]s, evaluates the rules and caches per-flow decisions in its
// [FlowTable]. [Pipeline.Trace] explains which rule matched and why.
//
// # Concurrency
//
// Decode and the extractors are pure functions. A compiled Patterns is
// read-only and safe for concurrent use; a HelloBuffer belongs to one flow
// and one goroutine. A Pipeline, with its flow table, belongs to one queue
// goroutine; Pipeline.Swap may be called from any goroutine.
package verdict
