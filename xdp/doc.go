// Package xdp is qguard's kernel fast path: an XDP program that drops
// packets from blocked sources and blocked flows before the stack allocates
// anything for them.
package xdp
