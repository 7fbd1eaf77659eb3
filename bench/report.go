package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// tableWidth is the widest line WriteTable prints: it fits a terminal
// and a README code block.
const tableWidth = 120

// WriteTable prints the report as text: a header, one table per traffic
// kind, the run-by-run ratios to the C peer, and what each mode is.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	r.writeHeader(&b)
	for _, sec := range tableSections(r.Results) {
		fmt.Fprintf(&b, "\n%s\n", sec.title)
		if err := sec.write(&b, sec.rows); err != nil {
			return err
		}
		for _, l := range sec.legend {
			b.WriteString(wrap(l, tableWidth, "  "))
		}
	}
	if err := r.writeCost(&b); err != nil {
		return err
	}
	r.writePaired(&b)
	r.writeModes(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) writeHeader(b *strings.Builder) {
	fmt.Fprintf(b, "qguard bench  %s  kernel %s  %d CPUs  %s per mode x %d run(s)\n",
		r.Started.Format("2006-01-02 15:04 UTC"), r.Kernel, r.CPUs, r.Duration, r.Runs)
	if r.Generator != "" || r.Sink != "" {
		b.WriteString(wrap(fmt.Sprintf("generator: %s; sink: %s", r.Generator, r.Sink), tableWidth, "  "))
	}
	b.WriteString(wrap("pinning: "+r.Pinning, tableWidth, "  "))
	b.WriteString(wrap("flows: "+r.Flows, tableWidth, "  "))
	fmt.Fprintf(b, "load average (1 min) before/after: %.2f / %.2f", r.LoadBefore, r.LoadAfter)
	// The run's own threads raise the load after; only the load before
	// says whether something else was running.
	if r.LoadBefore > float64(r.CPUs)/2 {
		b.WriteString("  (the machine was busy before the run: figures are skewed)")
	}
	b.WriteString("\n")
}

// section is one traffic kind's table.
type section struct {
	title  string
	rows   []Result
	write  func(io.Writer, []Result) error
	legend []string
}

// tableSections groups the results by traffic kind, in a fixed order;
// kinds it does not know get the UDP table.
func tableSections(rs []Result) []section {
	known := []section{
		{title: "64-byte UDP, packets/s", write: udpTable, legend: udpLegend},
		{title: "1500-byte UDP, packets/s", write: udpTable, legend: udpLegend},
		{title: "TCP streams, Gbit/s", write: tcpTable, legend: tcpLegend},
		{title: "Short TCP connections, connections/s", write: connTable, legend: connLegend},
		{title: "Blocked-source flood, packets/s dropped", write: floodTable, legend: floodLegend},
	}
	kinds := []Traffic{UDP64, UDPMTU, TCP, Conn, Flood}
	var out []section
	for i, k := range kinds {
		sec := known[i]
		for _, x := range rs {
			if x.Traffic == k {
				sec.rows = append(sec.rows, x)
			}
		}
		if len(sec.rows) > 0 {
			out = append(out, sec)
		}
	}
	var other []Traffic
	for _, x := range rs {
		if !slices.Contains(kinds, x.Traffic) && !slices.Contains(other, x.Traffic) {
			other = append(other, x.Traffic)
		}
	}
	for _, k := range other {
		sec := section{title: string(k) + ", packets/s", write: udpTable, legend: udpLegend}
		for _, x := range rs {
			if x.Traffic == k {
				sec.rows = append(sec.rows, x)
			}
		}
		out = append(out, sec)
	}
	// One legend per kind of table: the second UDP table needs none.
	seen := map[string]bool{}
	for i := range out {
		if l := out[i].legend; len(l) > 0 && seen[l[0]] {
			out[i].legend = nil
		} else if len(l) > 0 {
			seen[l[0]] = true
		}
	}
	return out
}

var udpLegend = []string{
	"delivered: packets/s at the sink under the flood, spread min..max over runs; vs C: over c-nfq's for the same " +
		"traffic. On a small machine the generator's CPU, which also does the firewall's queueing work, can cap the " +
		"flood for every handler that keeps up (kernel-only forwarding has no queueing work: the generator's limit).",
	"drain: the steady rate (90% to 10% left) the handler emptied a full queue, bursts queued while it was stopped and " +
		"the generator idle: its capacity. drain vs C: over c-nfq's drain; go-nfqueue has no drain phase (its README's " +
		"255-packet queue empties too fast to time), and where its queue overflowed in the flood that rate is its capacity: " +
		"vs go is drain over it.",
	"ns/pkt: the handler process's CPU time per packet it handled; user: its share in user space (the rest is the " +
		"kernel: receive, verdict, reinjection, forwarding). q/u drop: the kernel's queue_dropped/user_dropped summed " +
		"over runs (and sink socket overruns, +s, with the socket sink). rtt: median/99th percentile round trip in µs " +
		"of a low-rate UDP echo through the firewall both ways.",
}

var tcpLegend = []string{
	"Gbit/s: payload the sink's sockets read from bulk streams written with Go's net package, spread min..max over " +
		"runs; vs C, vs kernel: over c-nfq's and kernel's; queued/s: packets the queue saw per second (a GSO " +
		"super-packet counts once); ns/pkt: handler CPU per queued packet. Every handler asks for GSO super-packets " +
		"whole (NFQA_CFG_F_GSO; the daemon's default) but :tcp-nogso, which has the kernel segment them first.",
	"Kernel-only forwarding does all its work on the generator's CPU (sender, forwarding, receiver); through a queue " +
		"the verdicts carry the forwarding and the receiver's softirq onto the handler's CPU, so a queue mode can pass it.",
}

var connLegend = []string{
	"conn/s: connections completed per second (connect, a 64-byte request, a 64-byte reply, the server's close), spread " +
		"min..max over runs; vs C, vs kernel: over c-nfq's and kernel's; failed: connections refused, timed out or cut " +
		"short, summed over runs; pkts/conn: packets the queue saw per connection; ns/conn: handler CPU per connection. " +
		"As for the streams, a queue moves part of the forwarding onto the handler's CPU.",
}

var floodLegend = []string{
	"dropped: packets/s the firewall dropped from one blocked source; vs queue: over flood-queue's (the queue deciding " +
		"each packet). fw ns/pkt: the whole firewall's CPU per dropped packet (all CPUs' irq+softirq time plus the " +
		"handler's; /proc/stat has 10ms resolution, so tiny costs read as 0); pps/CPU: 1s over it.",
}

// udpTable prints 64-byte and MTU-sized UDP rows.
func udpTable(w io.Writer, rs []Result) error {
	t := newTable(w, rs, "sent", "delivered", "spread", "vs C", "drain", "vs C", "vs go", "ns/pkt", "user", "q/u drop", "rtt µs")
	for _, x := range rs {
		if !t.ran(x) {
			continue
		}
		t.row(x, num(x.SentPPS.Median), num(x.DeliveredPPS.Median), spread(x.DeliveredPPS), ratio(x.VsC),
			dash(x.DrainPPS.Median, num), ratio(x.DrainVsC), ratio(x.DrainVsGo),
			dash(x.CPUPerPacket.Median, ns), dash(x.UserShare.Median, pct), drops(x), rtt(x))
	}
	return t.flush()
}

// tcpTable prints the TCP stream rows.
func tcpTable(w io.Writer, rs []Result) error {
	t := newTable(w, rs, "Gbit/s", "spread", "vs C", "vs kernel", "queued/s", "ns/pkt", "user", "q/u drop")
	for _, x := range rs {
		if !t.ran(x) {
			continue
		}
		g := x.DeliveredMbps
		g = Summary{Median: g.Median / 1e3, Min: g.Min / 1e3, Max: g.Max / 1e3}
		t.row(x, fmt.Sprintf("%.2f", g.Median), spread(g), ratio(x.VsC), ratio(x.VsKernel),
			dash(x.queuedPPS(), num), dash(x.CPUPerPacket.Median, ns), dash(x.UserShare.Median, pct), drops(x))
	}
	return t.flush()
}

// connTable prints the short-connection rows.
func connTable(w io.Writer, rs []Result) error {
	t := newTable(w, rs, "conn/s", "spread", "vs C", "vs kernel", "failed", "pkts/conn", "ns/conn", "user", "q/u drop")
	for _, x := range rs {
		if !t.ran(x) {
			continue
		}
		t.row(x, num(x.ConnPS.Median), spread(x.ConnPS), ratio(x.VsC), ratio(x.VsKernel), compact(x.ConnFailures),
			dash(x.queuedPerConn(), digits3), dash(x.CPUPerConn.Median, ns), dash(x.UserShare.Median, pct), drops(x))
	}
	return t.flush()
}

// floodTable prints the blocked-source flood rows.
func floodTable(w io.Writer, rs []Result) error {
	t := newTable(w, rs, "sent", "dropped", "spread", "vs queue", "q/u drop", "fw ns/pkt", "pps/CPU")
	for _, x := range rs {
		if !t.ran(x) {
			continue
		}
		t.row(x, num(x.SentPPS.Median), num(x.DroppedPPS.Median), spread(x.DroppedPPS), ratio(x.VsQueue), drops(x),
			dash(x.SystemCPUPkt.Median, ns), dash(x.SystemCPUPkt.Median, capacity))
	}
	return t.flush()
}

// table is a tabwriter with the mode name left-aligned and the figures
// right-aligned.
type table struct {
	w     io.Writer
	buf   strings.Builder
	tw    *tabwriter.Writer
	width int // of the mode column
}

func newTable(w io.Writer, rs []Result, cols ...string) *table {
	t := &table{w: w, width: len("mode")}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, x := range rs {
		t.width = max(t.width, len(x.Mode))
	}
	fmt.Fprintf(t.tw, "%-*s\t%s\t\n", t.width, "mode", strings.Join(cols, "\t"))
	return t
}

// ran prints a row for a mode that did not run and reports whether x ran.
func (t *table) ran(x Result) bool {
	switch {
	case x.Skipped != "":
		fmt.Fprintf(t.tw, "%-*s\tskipped\t\n", t.width, x.Mode)
	case x.Error != "":
		fmt.Fprintf(t.tw, "%-*s\tFAILED\t\n", t.width, x.Mode)
	default:
		return x.Ran()
	}
	return false
}

func (t *table) row(x Result, cells ...string) {
	fmt.Fprintf(t.tw, "%-*s\t%s\t\n", t.width, x.Mode, strings.Join(cells, "\t"))
}

// flush writes the table without the padding tabwriter puts left of the
// (already padded) mode column.
func (t *table) flush() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	for l := range strings.Lines(t.buf.String()) {
		if _, err := io.WriteString(t.w, strings.TrimPrefix(l, "  ")); err != nil {
			return err
		}
	}
	return nil
}

// writePaired prints every mode's ratios to the C peer made run by run.
func (r *Report) writePaired(b *strings.Builder) {
	if r.Runs <= 1 {
		return
	}
	var lines []string
	width := 20
	for _, x := range r.Results {
		width = max(width, len(x.Mode))
	}
	for _, x := range r.Results {
		// c-nfq's own rows are the reference: always 1.00x.
		if !x.Ran() || x.PairedVsC.Median == 0 || x.Mode == "c-nfq" || strings.HasPrefix(x.Mode, "c-nfq:") {
			continue
		}
		l := fmt.Sprintf("  %-*s delivered %s", width, x.Mode, triple(x.PairedVsC))
		if x.PairedDrainVsC.Median > 0 {
			l += "   drain " + triple(x.PairedDrainVsC)
		}
		lines = append(lines, l+"\n")
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("\nPaired with c-nfq run by run (runs interleave, so each pair was measured seconds apart): min / median / max\n")
	for _, l := range lines {
		b.WriteString(l)
	}
}

// writeModes says what each mode is, or why it did not run.
func (r *Report) writeModes(b *strings.Builder) {
	b.WriteString("\n")
	width := 0
	for _, x := range r.Results {
		width = max(width, len(x.Mode))
	}
	indent := strings.Repeat(" ", width+3)
	for _, x := range r.Results {
		var l string
		switch {
		case x.Skipped != "":
			l = "skipped: " + x.Skipped
		case x.Error != "":
			l = "FAILED: " + x.Error
		default:
			l = x.About
		}
		lines := strings.Split(strings.TrimRight(wrap(fmt.Sprintf("  %-*s %s", width, x.Mode, l), tableWidth, indent), " \n"), "\n")
		if x.Ran() && x.Pinning != "" {
			// The pinning stays in one piece: on the last line or a line of its own.
			pin, last := "["+x.Pinning+"]", &lines[len(lines)-1]
			if utf8.RuneCountInString(*last)+1+utf8.RuneCountInString(pin) <= tableWidth {
				*last += " " + pin
			} else {
				lines = append(lines, indent+pin)
			}
		}
		b.WriteString(strings.Join(lines, "\n") + "\n")
	}
}

// wrap breaks s into lines of at most width runes at spaces, indenting
// the continuation lines; every line ends in a newline. A word longer than
// a line stands alone on its line.
func wrap(s string, width int, indent string) string {
	var b strings.Builder
	line := 0
	for i, word := range strings.Split(s, " ") {
		n := utf8.RuneCountInString(word)
		switch {
		case i == 0:
		case line+1+n > width && line > utf8.RuneCountInString(indent):
			b.WriteString("\n" + indent)
			line = utf8.RuneCountInString(indent)
		default:
			b.WriteByte(' ')
			line++
		}
		b.WriteString(word)
		line += n
	}
	b.WriteByte('\n')
	return b.String()
}

// WriteJSON writes the report, samples included, as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// LoadJSON reads a report written by SaveJSON and recomputes its summaries
// and ratios from its samples, so a saved run can be printed again, by a
// newer qguard too.
func LoadJSON(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JSON report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("read JSON report %s: %w", path, err)
	}
	r.Recompute()
	return &r, nil
}

// SaveJSON writes the report to a file.
func (r *Report) SaveJSON(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write JSON report: %w", err)
	}
	if err := r.WriteJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("write JSON report %s: %w", path, err)
	}
	return f.Close()
}

func num(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// spread is min..max in the unit of max, three digits each: "282..322k".
func spread(s Summary) string {
	if s.Min == s.Max {
		return "-"
	}
	unit, div := "", 1.0
	switch {
	case s.Max >= 1e6:
		unit, div = "M", 1e6
	case s.Max >= 1e3:
		unit, div = "k", 1e3
	}
	return digits3(s.Min/div) + ".." + digits3(s.Max/div) + unit
}

// digits3 prints v with about three significant digits.
func digits3(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// dash prints v with f, or "-" when there is no figure.
func dash(v float64, f func(float64) string) string {
	if v == 0 {
		return "-"
	}
	return f(v)
}

// queuedPPS is the median rate the queue saw packets at.
func (r *Result) queuedPPS() float64 {
	var v []float64
	for _, s := range r.Samples {
		if s.Seconds > 0 && s.Queued > 0 {
			v = append(v, float64(s.Queued)/s.Seconds)
		}
	}
	return summarize(v).Median
}

// queuedPerConn is the packets the queue saw per completed connection.
func (r *Result) queuedPerConn() float64 {
	var q, c uint64
	for _, s := range r.Samples {
		q += s.Queued
		c += s.Conns
	}
	if c == 0 {
		return 0
	}
	return float64(q) / float64(c)
}

func ns(v float64) string { return fmt.Sprintf("%.0f", v) }

func pct(v float64) string { return fmt.Sprintf("%.0f%%", v*100) }

// capacity is what one CPU could handle at the measured cost per packet:
// a figure that holds when the generator, not the handler, limited the run.
func capacity(nsPerPkt float64) string { return num(1e9 / nsPerPkt) }

func triple(s Summary) string {
	return fmt.Sprintf("%.2fx / %.2fx / %.2fx", s.Min, s.Median, s.Max)
}

func ratio(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v)
}

// drops is queue_dropped/user_dropped, and sink socket overruns when any.
func drops(x Result) string {
	s := compact(x.QueueDropped) + "/" + compact(x.UserDropped)
	if x.SinkDrops > 0 {
		s += "+" + compact(x.SinkDrops) + "s"
	}
	return s
}

// compact prints a count in at most five characters or so.
func compact(n uint64) string {
	if n < 10000 {
		return fmt.Sprint(n)
	}
	return num(float64(n))
}

func rtt(x Result) string {
	if x.LatencyP50Us.Median == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f/%.0f", x.LatencyP50Us.Median, x.LatencyP99Us.Median)
}
