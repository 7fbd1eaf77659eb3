package engine

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/verdict"

	"github.com/qguard/qguard/verdict/l7"
	"github.com/qguard/qguard/verdict/packet"
)

// The decision and flow record (docs/record.md): JSON lines, one per
// decision and one when conntrack forgets a flow qguard decided. The packet
// path only copies a fixed-size recEvent into a bounded channel (no
// allocation; a full channel counts a drop and never waits); one writer
// goroutine formats and writes, and joins the conntrack destroy events
// (conntrack_linux.go) with the decisions it recorded.

// recEvent is one decision as the packet path saw it.
type recEvent struct {
	t             int64 // Unix nanoseconds
	gen           *policyState
	rule          int32
	queue         uint16
	action, alert verdict.Action
	family, proto uint8
	cached        bool
	offload       bool
	src, dst      netip.Addr
	sport, dport  uint16
	inIf, outIf   uint32
	length        uint32
	nameKind      uint8 // 0 none, 1 dns, 2 sni, 3 http host
	nameLen       uint8
	name          [l7.MaxNameLen]byte
}

// recQueue is one queue's sampling and rate-limit state, owned by its
// goroutine.
type recQueue struct {
	n            uint64
	tokens, last float64 // seconds since the recorder started
}

// recorder owns the record's channel and writer.
type recorder struct {
	cfg    config.Record
	start  time.Time
	ch     chan recEvent
	flows  chan ctEvent // conntrack destroy events, nil without
	stop   chan struct{}
	done   chan struct{}
	out    io.WriteCloser
	path   string // "" for stdout
	ifaces *verdict.Ifaces
	rate   float64 // tokens per second; burst is one second's worth

	written, dropped, limited, sampled, flowRecs atomic.Uint64
	started                                      atomic.Bool
	closeOnce                                    sync.Once
}

// RecordStats counts the record's lines.
type RecordStats struct {
	Written uint64 `json:"written"` // lines written (decisions and flows)
	Flows   uint64 `json:"flows"`   // of them flow records
	Dropped uint64 `json:"dropped"` // decisions lost to a full buffer
	Limited uint64 `json:"limited"` // decisions over record.rate
	Sampled uint64 `json:"sampled"` // decisions left out by record.sample
}

func newRecorder(c config.Record, ifaces *verdict.Ifaces) (*recorder, error) {
	r := &recorder{cfg: c, start: time.Now(), ch: make(chan recEvent, max(c.Buffer, 16)),
		stop: make(chan struct{}), done: make(chan struct{}), ifaces: ifaces, rate: c.Rate.PerSecond()}
	switch c.Output {
	case "stdout", "journal", "-":
		r.out = nopCloser{os.Stdout}
	default:
		r.path = c.Output
		f, err := openRecord(r.path)
		if err != nil {
			return nil, err
		}
		r.out = f
	}
	return r, nil
}

func openRecord(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open record.output: %w", err)
	}
	return f, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// decision records the decision d for packet p, if sampling and the rate
// limit let it. Called by the queue's goroutine; allocates nothing.
func (r *recorder) decision(qs *queueState, p *queue.Packet, d *verdict.Decision) {
	s := &qs.rec
	s.n++
	if r.cfg.Sample > 1 && s.n%uint64(r.cfg.Sample) != 0 {
		r.sampled.Add(1)
		return
	}
	now := time.Since(r.start).Seconds()
	s.tokens = math.Min(r.rate, s.tokens+(now-s.last)*r.rate)
	s.last = now
	if s.tokens < 1 {
		r.limited.Add(1)
		return
	}
	s.tokens--
	ev := &qs.ev
	var vp packet.Packet
	packet.Decode(p.Payload, &vp)
	*ev = recEvent{t: time.Now().UnixNano(), gen: qs.gen, rule: int32(d.Rule), queue: p.Queue,
		action: d.Action, alert: d.Alert, family: vp.Family, proto: vp.Proto, cached: d.Cached,
		offload: d.Offload, src: vp.Src, dst: vp.Dst, inIf: p.InIf, outIf: p.OutIf, length: uint32(len(p.Payload))}
	if vp.HasPorts() {
		ev.sport, ev.dport = vp.SrcPort, vp.DstPort
	}
	dns, sni, host := qs.pipe.SeenNames()
	for k, n := range [3][]byte{dns, sni, host} {
		if len(n) > 0 {
			ev.nameKind, ev.nameLen = uint8(k+1), uint8(copy(ev.name[:], n))
			break
		}
	}
	select {
	case r.ch <- *ev:
	default:
		r.dropped.Add(1)
	}
}

func (r *recorder) stats() RecordStats {
	return RecordStats{Written: r.written.Load(), Flows: r.flowRecs.Load(), Dropped: r.dropped.Load(),
		Limited: r.limited.Load(), Sampled: r.sampled.Load()}
}

// Record is one JSON line. Field names follow Suricata EVE (event_type,
// src_ip, dest_port, proto, flow.pkts_toserver, tls.sni, ...).
type Record struct {
	Timestamp string      `json:"timestamp"`
	EventType string      `json:"event_type"` // "decision" or "flow"
	Queue     uint16      `json:"queue"`
	Rule      string      `json:"rule"`
	Action    string      `json:"action"`          // accept, drop, reject
	Alert     string      `json:"alert,omitempty"` // an alert rule: what it would do
	IPVersion uint8       `json:"ip_version"`      // 4 or 6
	Proto     string      `json:"proto"`           // TCP, UDP, ICMP, IPV6-ICMP, ...
	SrcIP     string      `json:"src_ip"`
	SrcPort   uint16      `json:"src_port,omitempty"`
	DestIP    string      `json:"dest_ip"`
	DestPort  uint16      `json:"dest_port,omitempty"`
	InIface   string      `json:"in_iface,omitempty"`
	OutIface  string      `json:"out_iface,omitempty"`
	Cached    bool        `json:"cached"`
	Offloaded bool        `json:"offloaded"`
	Length    uint32      `json:"length,omitempty"` // the deciding packet's bytes
	DNS       *RecordDNS  `json:"dns,omitempty"`
	TLS       *RecordTLS  `json:"tls,omitempty"`
	HTTP      *RecordHTTP `json:"http,omitempty"`
	Flow      *RecordFlow `json:"flow,omitempty"`
}

// RecordDNS, RecordTLS and RecordHTTP carry the names qguard read.
type RecordDNS struct {
	RRName string `json:"rrname"`
}

type RecordTLS struct {
	SNI string `json:"sni"` // also of QUIC Initials
}

type RecordHTTP struct {
	Hostname string `json:"hostname"`
}

// RecordFlow is a flow's totals from conntrack, in EVE's terms: to server
// is the initiator's direction. Counters need net.netfilter.nf_conntrack_acct=1
// and exact times nf_conntrack_timestamp=1; without, they are left out and
// start is the decision's time.
type RecordFlow struct {
	PktsToServer  *uint64 `json:"pkts_toserver,omitempty"`
	PktsToClient  *uint64 `json:"pkts_toclient,omitempty"`
	BytesToServer *uint64 `json:"bytes_toserver,omitempty"`
	BytesToClient *uint64 `json:"bytes_toclient,omitempty"`
	Start         string  `json:"start"`
	End           string  `json:"end"`
	Duration      float64 `json:"duration"` // seconds
}

var recProtos = map[uint8]string{packet.ProtoTCP: "TCP", packet.ProtoUDP: "UDP", packet.ProtoICMP: "ICMP",
	packet.ProtoICMPv6: "IPV6-ICMP", packet.ProtoSCTP: "SCTP", packet.ProtoUDPLite: "UDPLite",
	packet.ProtoDCCP: "DCCP", packet.ProtoESP: "ESP", packet.ProtoAH: "AH"}

func protoString(p uint8) string {
	if s, ok := recProtos[p]; ok {
		return s
	}
	return fmt.Sprint(p)
}

const recTime = "2006-01-02T15:04:05.000000Z07:00"

func (r *recorder) format(ev *recEvent) Record {
	rule := ""
	if ev.gen != nil {
		rule = ev.gen.compiled.RuleName(int(ev.rule))
	}
	rec := Record{Timestamp: time.Unix(0, ev.t).UTC().Format(recTime), EventType: "decision", Queue: ev.queue,
		Rule: rule, Action: ev.action.String(), IPVersion: ev.family, Proto: protoString(ev.proto),
		SrcIP: ev.src.String(), SrcPort: ev.sport, DestIP: ev.dst.String(), DestPort: ev.dport,
		InIface: r.ifaces.Name(ev.inIf), OutIface: r.ifaces.Name(ev.outIf), Cached: ev.cached,
		Offloaded: ev.offload, Length: ev.length}
	if ev.alert != verdict.ActionUnset {
		rec.Alert = ev.alert.String()
	}
	name := string(ev.name[:ev.nameLen])
	switch ev.nameKind {
	case 1:
		rec.DNS = &RecordDNS{RRName: name}
	case 2:
		rec.TLS = &RecordTLS{SNI: name}
	case 3:
		rec.HTTP = &RecordHTTP{Hostname: name}
	}
	return rec
}

// flowKey identifies a flow from its initiator's side, as conntrack's
// original tuple does.
type recFlowKey struct {
	proto        uint8
	src, dst     netip.Addr
	sport, dport uint16
}

// maxRecFlows bounds the decisions kept for joining with conntrack: past
// it, an arbitrary one is forgotten (its flow ends without a flow record).
const maxRecFlows = 1 << 16

// run is the writer goroutine.
func (r *recorder) run() {
	defer close(r.done)
	w := bufio.NewWriterSize(r.out, 64<<10)
	enc := json.NewEncoder(w)
	usr1 := make(chan os.Signal, 1)
	if r.path != "" {
		signal.Notify(usr1, syscall.SIGUSR1)
		defer signal.Stop(usr1)
	}
	flows := map[recFlowKey]Record{}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	write := func(rec *Record) {
		if enc.Encode(rec) == nil {
			r.written.Add(1)
		}
	}
	decided := func(ev *recEvent) {
		rec := r.format(ev)
		write(&rec)
		if r.flows == nil || ev.cached {
			return
		}
		if len(flows) >= maxRecFlows {
			for k := range flows {
				delete(flows, k)
				break
			}
		}
		flows[recFlowKey{ev.proto, ev.src, ev.dst, ev.sport, ev.dport}] = rec
	}
	for {
		select {
		case ev := <-r.ch:
			decided(&ev)
		case ct := <-r.flows:
			k := recFlowKey{ct.proto, ct.src, ct.dst, ct.sport, ct.dport}
			rec, ok := flows[k]
			if !ok {
				continue
			}
			delete(flows, k)
			r.flowRecord(&rec, &ct)
			write(&rec)
			r.flowRecs.Add(1)
		case <-usr1:
			w.Flush()
			if f, err := openRecord(r.path); err == nil {
				r.out.Close()
				r.out = f
				w.Reset(f)
			}
		case <-tick.C:
			w.Flush()
		case <-r.stop:
			for {
				select {
				case ev := <-r.ch:
					decided(&ev)
					continue
				default:
				}
				break
			}
			w.Flush()
			r.out.Close()
			return
		}
	}
}

// flowRecord turns the decision record rec into its flow's end record.
func (r *recorder) flowRecord(rec *Record, ct *ctEvent) {
	start, _ := time.Parse(recTime, rec.Timestamp)
	if ct.start != 0 {
		start = time.Unix(0, int64(ct.start))
	}
	end := time.Unix(0, ct.t)
	if ct.stop != 0 {
		end = time.Unix(0, int64(ct.stop))
	}
	f := &RecordFlow{Start: start.UTC().Format(recTime), End: end.UTC().Format(recTime), Duration: end.Sub(start).Seconds()}
	if ct.counters {
		f.PktsToServer, f.BytesToServer = &ct.pkts[0], &ct.bytes[0]
		f.PktsToClient, f.BytesToClient = &ct.pkts[1], &ct.bytes[1]
	}
	rec.EventType, rec.Timestamp, rec.Flow, rec.Length, rec.Cached = "flow", f.End, f, 0, false
}

// close stops the writer after it wrote what is queued.
func (r *recorder) close() {
	if r == nil {
		return
	}
	r.closeOnce.Do(func() {
		if !r.started.Load() {
			r.out.Close()
			return
		}
		close(r.stop)
		<-r.done
	})
}
