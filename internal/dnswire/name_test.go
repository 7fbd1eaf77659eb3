package dnswire

import (
	"bytes"
	"strings"
	"testing"
)

// msgWith is a message of a zeroed header and b; names start at HeaderLen.
func msgWith(b ...byte) []byte { return append(make([]byte, HeaderLen), b...) }

// wireName is the uncompressed wire form of a dotted name.
func wireName(name string) []byte {
	var b []byte
	for l := range strings.SplitSeq(name, ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func TestReadName(t *testing.T) {
	long := strings.Repeat("a", 63)
	name253 := strings.Join([]string{long, long, long, strings.Repeat("b", 61)}, ".")
	// "example.com" at 12, then "www" and a pointer back to it at 25.
	back := append(msgWith(wireName("example.com")...), 3, 'w', 'w', 'w', 0xc0, 12)
	tests := []struct {
		name string
		msg  []byte
		off  int
		dst  int // buffer length; 0 means MaxNameLen
		want string
		next int
		r    Result
	}{
		{"plain, lowercased", msgWith(wireName("WWW.Example.COM")...), 12, 0, "www.example.com", 29, OK},
		{"root", msgWith(0), 12, 0, "", 13, OK},
		{"63-byte label", msgWith(wireName(long)...), 12, 0, long, 77, OK},
		{"253 chars", msgWith(wireName(name253)...), 12, 0, name253, 12 + 255, OK},
		{"254 chars", msgWith(wireName(name253 + "b")...), 12, 0, "", 0, Bad},
		{"pointer backwards", back, 25, 0, "www.example.com", 31, OK},
		{"pointer forwards", msgWith(0xc0, 14, 1, 'x', 0), 12, 0, "x", 14, OK}, // dnsmasq and others follow it
		{"pointer chain", msgWith(0xc0, 14, 0xc0, 16, 1, 'y', 0), 12, 0, "y", 14, OK},
		{"self pointer", msgWith(0xc0, 12), 12, 0, "", 0, Bad},
		{"label then pointer to itself", msgWith(1, 'a', 0xc0, 12), 12, 0, "", 0, Bad},
		{"two pointers to each other", msgWith(0xc0, 14, 0xc0, 12), 12, 0, "", 0, Bad},
		{"reserved type 01", msgWith(0x41, 0), 12, 0, "", 0, Bad},
		{"reserved type 10", msgWith(0x81, 0), 12, 0, "", 0, Bad},
		{"dot in label", msgWith(3, 'a', '.', 'b', 0), 12, 0, "", 0, Bad},
		{"longer than dst", msgWith(wireName("example.com")...), 12, 5, "", 0, Bad},
		{"cut in label", msgWith(7, 'e', 'x'), 12, 0, "", 0, Short},
		{"cut before the end", msgWith(1, 'a'), 12, 0, "", 0, Short},
		{"cut in pointer", msgWith(1, 'a', 0xc0), 12, 0, "", 0, Short},
		{"pointer past the end", msgWith(0xc0, 0xff), 12, 0, "", 0, Short},
		{"offset past the end", msgWith(), 12, 0, "", 0, Short},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := make([]byte, MaxNameLen)
			if tt.dst > 0 {
				dst = dst[:tt.dst]
			}
			n, next, r := ReadName(tt.msg, tt.off, dst)
			if r != tt.r || string(dst[:n]) != tt.want || next != tt.next {
				t.Errorf("ReadName = %q, next %d, result %d; want %q, %d, %d", dst[:n], next, r, tt.want, tt.next, tt.r)
			}
		})
	}
}

func TestSkipName(t *testing.T) {
	tests := []struct {
		name string
		msg  []byte
		next int
		ok   bool
	}{
		{"plain", msgWith(wireName("www.example.com")...), 29, true},
		{"root", msgWith(0), 13, true},
		{"ends in a pointer", msgWith(3, 'w', 'w', 'w', 0xc0, 0xff), 18, true}, // not followed
		{"reserved type", msgWith(0x81, 0), 0, false},
		{"cut in label", msgWith(7, 'e', 'x'), 0, false},
		{"cut in pointer", msgWith(1, 'a', 0xc0), 0, false},
		{"too long on the wire", msgWith(wireName(strings.Repeat("a.", 127) + "a")...), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if next, ok := SkipName(tt.msg, HeaderLen); next != tt.next || ok != tt.ok {
				t.Errorf("SkipName = %d, %v; want %d, %v", next, ok, tt.next, tt.ok)
			}
		})
	}
}

func TestReadNameAllocs(t *testing.T) {
	msg := append(msgWith(wireName("example.com")...), 3, 'w', 'w', 'w', 0xc0, 12)
	var dst [MaxNameLen]byte
	if n := testing.AllocsPerRun(100, func() {
		ReadName(msg, 25, dst[:])
		SkipName(msg, 25)
	}); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

// FuzzReadName reads a name anywhere in an arbitrary message: every read
// ends, a name read is bounded, lowercased and made of non-empty labels, and
// the offset after it is the one SkipName finds without following pointers.
func FuzzReadName(f *testing.F) {
	f.Add(append(msgWith(wireName("example.com")...), 3, 'w', 'w', 'w', 0xc0, 12), uint16(25))
	f.Add(msgWith(0xc0, 14, 1, 'x', 0), uint16(12))
	f.Add(msgWith(1, 'a', 0xc0, 12), uint16(12))
	var dst [MaxNameLen]byte
	f.Fuzz(func(t *testing.T, msg []byte, off uint16) {
		n, next, r := ReadName(msg, int(off), dst[:])
		if r != OK {
			return
		}
		name := dst[:n]
		if n > MaxNameLen || bytes.ContainsFunc(name, func(c rune) bool { return 'A' <= c && c <= 'Z' }) {
			t.Fatalf("name %q", name)
		}
		if n > 0 && (name[0] == '.' || name[n-1] == '.' || bytes.Contains(name, []byte(".."))) {
			t.Fatalf("empty label in %q", name)
		}
		if skip, ok := SkipName(msg, int(off)); !ok || skip != next {
			t.Fatalf("ReadName next %d, SkipName %d %v", next, skip, ok)
		}
	})
}
