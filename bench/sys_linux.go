package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr from <sys/socket.h>; Go's natural alignment
// matches the C layout on every Linux architecture.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// mmsgBatch is a prebuilt array of messages, each with one iovec pointing
// into buf, reused for every sendmmsg/recvmmsg call so the hot loops
// allocate nothing.
type mmsgBatch struct {
	msgs []mmsghdr
	iovs []unix.Iovec
	buf  []byte
}

func newMmsgBatch(n, size int) *mmsgBatch {
	b := &mmsgBatch{msgs: make([]mmsghdr, n), iovs: make([]unix.Iovec, n), buf: make([]byte, n*size)}
	for i := range b.msgs {
		b.iovs[i].Base = &b.buf[i*size]
		b.iovs[i].SetLen(size)
		b.msgs[i].hdr.Iov = &b.iovs[i]
		b.msgs[i].hdr.SetIovlen(1)
	}
	return b
}

// sendmmsg goes through the raw syscall: x/sys/unix has no wrapper for it.
func sendmmsg(fd int, msgs []mmsghdr) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func recvmmsg(fd int, msgs []mmsghdr, flags int) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), uintptr(flags), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// pinThread binds the calling OS thread to cpu; cpu < 0 leaves it alone.
// Callers lock the goroutine to its thread first and never unlock it, so the
// runtime discards the pinned thread when the goroutine ends.
func pinThread(cpu int) error {
	if cpu < 0 {
		return nil
	}
	var s unix.CPUSet
	s.Set(cpu)
	if err := unix.SchedSetaffinity(0, &s); err != nil {
		return fmt.Errorf("pin thread to CPU %d: %w", cpu, err)
	}
	return nil
}

// renice sets the nice value of thread tid (0: the calling thread); Linux
// keeps it per thread and a fork inherits the forking thread's.
func renice(tid, nice int) error {
	if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil {
		return fmt.Errorf("set nice %d: %w", nice, err)
	}
	return nil
}

// usableCPUs lists the CPUs this process may run on.
func usableCPUs() []int {
	var s unix.CPUSet
	if err := unix.SchedGetaffinity(0, &s); err != nil {
		return nil
	}
	var out []int
	for i := 0; i < 1024 && len(out) < s.Count(); i++ {
		if s.IsSet(i) {
			out = append(out, i)
		}
	}
	return out
}

// CPU clocks, from <linux/posix-timers.h>: a clockid for another process or
// thread is (^pid << 3) | CPUCLOCK_SCHED, with CPUCLOCK_PERTHREAD_MASK for a
// thread. They count in nanoseconds, unlike /proc/<pid>/stat's clock ticks.
const cpuclockSched = 2

// cpuclockPerThread selects one thread instead of the whole process.
const cpuclockPerThread = 4

// processCPU is the CPU time used so far by every thread of process pid.
func processCPU(pid int) (time.Duration, error) {
	return clockCPU(int32(^pid<<3 | cpuclockSched))
}

// threadCPU is the CPU time used so far by thread tid.
func threadCPU(tid int) (time.Duration, error) {
	return clockCPU(int32(^tid<<3 | cpuclockSched | cpuclockPerThread))
}

func clockCPU(id int32) (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(id, &ts); err != nil {
		return 0, fmt.Errorf("read CPU clock: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}

// softirqCPU is the time all CPUs spent in hard and soft interrupts, from
// /proc/stat: where the kernel forwards, filters and drops packets that no
// process is charged for.
func softirqCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("parse /proc/stat: unexpected first line %q", line)
	}
	var sum uint64
	for _, i := range []int{6, 7} { // irq, softirq
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/stat field %d: %w", i, err)
		}
		sum += v
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return time.Duration(sum) * 10 * time.Millisecond, nil
}

// loadAvg is the 1-minute load average, 0 when unreadable.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// statTimes reads utime and stime (clock ticks, USER_HZ 100) from a
// /proc/.../stat file: fields 14 and 15, counted after the parenthesised
// command name, which may itself hold spaces.
func statTimes(path string) (user, sys time.Duration, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", path, err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse %s: no command name", path)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime 15.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("parse %s: %d fields", path, len(f)+2)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("parse %s: bad utime/stime %q %q", path, f[11], f[12])
	}
	return time.Duration(u) * 10 * time.Millisecond, time.Duration(st) * 10 * time.Millisecond, nil
}
