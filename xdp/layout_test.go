//go:build 386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm

package xdp

import (
	"reflect"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// TestKeyLayout checks the Go mirrors of the map types against the BTF of
// the committed object, so a change on one side cannot silently make every
// lookup miss.
func TestKeyLayout(t *testing.T) {
	spec, err := loadFilter()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		m          string
		key, value uintptr
	}{
		{filterMapSrcBlocks, unsafe.Sizeof(srcKey{}), unsafe.Sizeof(entry{})},
		{filterMapFlowBlocks, unsafe.Sizeof(flowKey{}), unsafe.Sizeof(entry{})},
		{filterMapCounters, 4, 8},
	} {
		ms := spec.Maps[c.m]
		if ms == nil {
			t.Fatalf("object has no map %q", c.m)
		}
		if uintptr(ms.KeySize) != c.key || uintptr(ms.ValueSize) != c.value {
			t.Errorf("map %s: key/value %d/%d bytes in the object, %d/%d in Go", c.m, ms.KeySize, ms.ValueSize, c.key, c.value)
		}
	}
	for _, c := range []struct {
		btf any
		goT reflect.Type
	}{
		{spec.Maps[filterMapSrcBlocks].Key, reflect.TypeFor[srcKey]()},
		{spec.Maps[filterMapFlowBlocks].Key, reflect.TypeFor[flowKey]()},
		{spec.Maps[filterMapSrcBlocks].Value, reflect.TypeFor[entry]()},
	} {
		st, ok := c.btf.(*btf.Struct)
		if !ok || len(st.Members) != c.goT.NumField() {
			t.Errorf("%s: BTF %v does not mirror the Go struct", c.goT, c.btf)
			continue
		}
		for i, m := range st.Members {
			if off := c.goT.Field(i).Offset; uintptr(m.Offset.Bytes()) != off {
				t.Errorf("%s.%s at byte %d, C member %s at %d", c.goT, c.goT.Field(i).Name, off, m.Name, m.Offset.Bytes())
			}
		}
	}
	if n := spec.Maps[filterMapCounters].MaxEntries; n < uint32(statSlots) {
		t.Errorf("counters has %d slots, Go reads %d", n, statSlots)
	}
	for _, m := range []string{filterMapSrcBlocks, filterMapFlowBlocks} {
		if typ := spec.Maps[m].Type; typ != ebpf.LRUHash {
			t.Errorf("map %s is %v, want LRUHash", m, typ)
		}
	}
}
