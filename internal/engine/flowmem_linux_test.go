package engine

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/config"
)

// Flow tables that together exceed the machine's memory are refused at New,
// before anything is allocated, naming the sizes.
func TestNewRefusesFlowTablesOverMemory(t *testing.T) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		t.Skip("no sysinfo:", err)
	}
	if ram := uint64(si.Totalram) * uint64(si.Unit); ram >= 1<<40 {
		t.Skipf("%s of memory holds 1024 tables of 1 GiB", config.FormatBytes(ram))
	}
	cfg, err := config.Parse("big.yaml", []byte("flows: {max: 16777216}\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, &Options{Offline: true, Queue: &QueueRange{Num: 0, Count: 1024}})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "1024 queues of 1 GiB each (flows.max 16777216) take 1 TiB, more than this machine's") {
		t.Fatalf("New: %v, want a refusal naming 1024 queues of 1 GiB", err)
	}
}
