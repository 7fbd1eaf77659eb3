// Package sockbuf sizes socket buffers: past the system maximum
// (net.core.rmem_max, wmem_max) where the caller may (SO_RCVBUFFORCE and
// SO_SNDBUFFORCE need CAP_NET_ADMIN), else up to that maximum. The queue
// engine and the benchmark's generator and sinks size theirs with it.
package sockbuf
