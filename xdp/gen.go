package xdp

// The BPF object and its Go bindings are generated and committed, so `go
// build` needs no clang. Regenerate with `go generate ./xdp` (clang, llvm and
// libbpf-dev from Debian); TestGeneratedObjectsUpToDate checks the result.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -no-global-types filter bpf/filter.c -- -I/usr/include/x86_64-linux-gnu
//go:generate go run ./internal/genstamp -src bpf/filter.c -obj filter_bpfel.o -cc clang -out bpf/filter.stamp
