package bench

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ErrPlotFormat is returned by WritePlot for a file name not ending in .svg.
var ErrPlotFormat = errors.New("plot format not supported")

// Chart geometry, in SVG user units (pixels at 96 dpi).
const (
	plotWidth   = 1000
	plotMargin  = 20
	plotFont    = "DejaVu Sans, Liberation Sans, Arial, sans-serif"
	plotMono    = "DejaVu Sans Mono, Liberation Mono, monospace"
	labelSize   = 12 // mode names, monospace
	valueSize   = 11 // figures at the bar ends, monospace
	barHeight   = 11
	barGap      = 2
	rowGap      = 8
	valueRoom   = 64 // right of the longest bar: its figure
	axisRoom    = 34 // below a panel's rows: tick labels and the unit
	panelGap    = 18
	titleHeight = 26
)

// familyColor is each family's bar colour (Okabe-Ito, safe for colour
// blindness); drain bars are the same colour, lighter.
var familyColor = map[Family]string{
	FamilyKernel:  "#7a7a7a",
	FamilyC:       "#0072b2",
	FamilyGo:      "#e69f00",
	FamilyLibrary: "#009e73",
	FamilyDaemon:  "#cc79a7",
}

// WritePlot saves the report as an SVG chart (Plot) to path, which must
// end in .svg; `rsvg-convert -o x.png x.svg` (librsvg2-bin) renders it.
func (r *Report) WritePlot(path string) error {
	if filepath.Ext(path) != ".svg" {
		return fmt.Errorf("write plot %s: %w (write .svg; rsvg-convert renders it to PNG)", path, ErrPlotFormat)
	}
	var b bytes.Buffer
	if err := r.Plot(&b); err != nil {
		return fmt.Errorf("write plot %s: %w", path, err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write plot: %w", err)
	}
	return nil
}

// Plot draws the report as an SVG chart: one panel per traffic kind, a
// row per mode with its flood figure (solid) and its drain figure (light)
// side by side, bars coloured by family, min..max over runs as whiskers.
func (r *Report) Plot(w io.Writer) error {
	panels := plotPanels(r.Results)
	if len(panels) == 0 {
		return errors.New("no mode in the report")
	}
	c := &canvas{}
	for _, p := range panels {
		for _, row := range p.rows {
			c.labelW = max(c.labelW, textWidth(row.label, labelSize, true))
		}
	}
	y := r.plotHeader(c)
	for _, p := range panels {
		y = c.panel(p, y) + panelGap
	}
	c.height = y - panelGap + plotMargin
	_, err := io.WriteString(w, c.svg())
	return err
}

// panel is one traffic kind's part of the chart.
type panel struct {
	title string
	unit  string  // axis label
	div   float64 // figures are divided by it on the axis
	// format prints a bar's figure at its end (default num).
	format func(float64) string
	rows   []plotRow
}

type plotRow struct {
	label  string
	family Family
	note   string // why there are no bars: skipped, failed
	bars   []plotBar
}

type plotBar struct {
	v     Summary
	light bool // drain
}

// plotPanels groups the results by traffic kind, in the table's order.
func plotPanels(rs []Result) []panel {
	var out []panel
	for _, sec := range tableSections(rs) {
		p := panel{title: sec.title, unit: "thousand packets/s", div: 1e3}
		t := sec.rows[0].Traffic
		switch t {
		case UDP64, UDPMTU:
			p.title += ": delivered under a flood (solid) and drained from a full queue (light)"
		case TCP:
			p.unit, p.div = "Gbit/s", 1
			p.format = func(v float64) string { return fmt.Sprintf("%.2f", v) }
		case Conn:
			p.unit = "thousand connections/s"
		case Flood:
			p.title += " (the firewall's drop rate)"
		}
		for _, x := range sec.rows {
			row := plotRow{label: x.Mode, family: x.family()}
			switch {
			case x.Skipped != "":
				row.note = "skipped (see the table)"
			case x.Error != "":
				row.note = "failed (see the table)"
			case !x.Ran():
				continue
			default:
				row.bars = figures(&x)
			}
			p.rows = append(p.rows, row)
		}
		if len(p.rows) > 0 {
			out = append(out, p)
		}
	}
	return append(out, costPanels(rs)...)
}

// costPanels are the cost phase's figures, a panel per offered rate: the
// whole firewall's CPU per packet, the figure that holds on a small
// machine where the flood does not.
func costPanels(rs []Result) []panel {
	var rates []int
	for _, x := range rs {
		for _, l := range x.Cost {
			if !slices.Contains(rates, l.Rate) {
				rates = append(rates, l.Rate)
			}
		}
	}
	var out []panel
	for _, rate := range rates {
		p := panel{title: fmt.Sprintf("Cost at %s packets/s offered (64-byte UDP): the whole firewall's CPU per packet", num(float64(rate))),
			unit: "ns of CPU per packet (lower is better)", div: 1, format: func(v float64) string { return fmt.Sprintf("%.0f ns", v) }}
		for _, x := range rs {
			if l := costAt(x.Cost, rate); l != nil && l.FirewallNS.Median > 0 {
				p.rows = append(p.rows, plotRow{label: x.Mode, family: x.family(), bars: []plotBar{{v: l.FirewallNS}}})
			}
		}
		if len(p.rows) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// figures are the bars of one result: what the chart compares.
func figures(x *Result) []plotBar {
	switch x.Traffic {
	case TCP:
		g := x.DeliveredMbps
		return []plotBar{{v: Summary{Median: g.Median / 1e3, Min: g.Min / 1e3, Max: g.Max / 1e3}}}
	case Conn:
		return []plotBar{{v: x.ConnPS}}
	case Flood:
		return []plotBar{{v: x.DroppedPPS}}
	}
	bars := []plotBar{{v: x.DeliveredPPS}}
	if x.DrainPPS.Median > 0 {
		bars = append(bars, plotBar{v: x.DrainPPS, light: true})
	}
	return bars
}

// canvas collects SVG elements and the layout they share.
type canvas struct {
	b      strings.Builder
	labelW float64 // widest mode label
	height float64
}

func (c *canvas) svg() string {
	return fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%.0f" viewBox="0 0 %d %.0f">`+"\n"+
		`<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n%s</svg>\n",
		plotWidth, c.height, plotWidth, c.height, c.b.String())
}

// text adds a text element; anchor is start, middle or end.
func (c *canvas) text(x, y float64, s string, size float64, mono bool, anchor, extra string) {
	font := plotFont
	if mono {
		font = plotMono
	}
	fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" font-family="%s" font-size="%.0f" text-anchor="%s"%s>%s</text>`+"\n",
		x, y, font, size, anchor, extra, html.EscapeString(s))
}

func (c *canvas) rect(x, y, w, h float64, fill, extra string) {
	fmt.Fprintf(&c.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"%s/>`+"\n", x, y, w, h, fill, extra)
}

func (c *canvas) line(x1, y1, x2, y2 float64, stroke string, width float64) {
	fmt.Fprintf(&c.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%.1f"/>`+"\n",
		x1, y1, x2, y2, stroke, width)
}

// plotHeader draws the title and the legend; it returns where the first
// panel starts.
func (r *Report) plotHeader(c *canvas) float64 {
	y := float64(plotMargin) + 16
	c.text(plotMargin, y, fmt.Sprintf("qguard bench %s, kernel %s, %d CPUs, %d run(s) of %s per mode",
		r.Started.Format("2006-01-02 15:04 UTC"), r.Kernel, r.CPUs, r.Runs, r.Duration), 17, false, "start", ` font-weight="bold"`)
	y += 24
	x := float64(plotMargin)
	for _, f := range families {
		c.rect(x, y-10, 14, 11, familyColor[f.f], "")
		c.text(x+19, y, f.label, 12, false, "start", "")
		x += 19 + textWidth(f.label, 12, false) + 22
	}
	y += 20
	x = plotMargin
	c.rect(x, y-10, 14, 11, "#7a7a7a", "")
	c.text(x+19, y, "flood: packets/s (Gbit/s) that reached the sink", 12, false, "start", "")
	x += 19 + textWidth("flood: packets/s (Gbit/s) that reached the sink", 12, false) + 22
	c.rect(x, y-10, 14, 11, lighter("#7a7a7a"), ` stroke="#7a7a7a"`)
	c.text(x+19, y, "drain: capacity, a full queue emptied", 12, false, "start", "")
	x += 19 + textWidth("drain: capacity, a full queue emptied", 12, false) + 22
	c.whisker(x, x+24, y-4.5)
	c.text(x+30, y, "min..max over runs", 12, false, "start", "")
	return y + 22
}

// panel draws one panel from y and returns where it ends.
func (c *canvas) panel(p panel, y float64) float64 {
	c.text(plotMargin, y+16, p.title, 14, false, "start", ` font-weight="bold"`)
	y += titleHeight
	x0 := plotMargin + c.labelW + 10
	plotW := plotWidth - plotMargin - valueRoom - x0
	top := 0.0
	for _, row := range p.rows {
		for _, b := range row.bars {
			top = max(top, b.v.Max/p.div, b.v.Median/p.div)
		}
	}
	step := niceStep(top / 5)
	top = math.Max(step, math.Ceil(top/step)*step)
	scale := plotW / top
	start, bottom := y, y
	for _, row := range p.rows {
		bottom += rowHeight(row)
	}
	// The grid first, so bars and whiskers are drawn over it.
	for v := 0.0; v <= top+step/2; v += step {
		x := x0 + v*scale
		c.line(x, start-4, x, bottom, "#dddddd", 1)
		c.text(x, bottom+14, axisNumber(v), 11, true, "middle", "")
	}
	for _, row := range p.rows {
		c.plotRow(row, x0, y, scale, p)
		y += rowHeight(row)
	}
	c.line(x0, start-4, x0, bottom, "#444444", 1)
	c.text(x0+plotW/2, bottom+30, p.unit, 12, false, "middle", "")
	return bottom + axisRoom
}

// rowHeight is the height of a row's bars and the gap below them.
func rowHeight(row plotRow) float64 {
	n := max(len(row.bars), 1)
	return float64(n*barHeight + (n-1)*barGap + rowGap)
}

// plotRow draws one mode's label and bars from y.
func (c *canvas) plotRow(row plotRow, x0, y, scale float64, p panel) {
	div, format := p.div, p.format
	if format == nil {
		format = num
	}
	h := rowHeight(row) - rowGap
	c.text(x0-10, y+h/2+4, row.label, labelSize, true, "end", "")
	if row.note != "" {
		c.text(x0+6, y+h/2+4, row.note, valueSize, false, "start", ` fill="#888888" font-style="italic"`)
		return
	}
	color := familyColor[row.family]
	for i, b := range row.bars {
		by := y + float64(i*(barHeight+barGap))
		w := b.v.Median / div * scale
		if b.light {
			c.rect(x0, by, w, barHeight, lighter(color), fmt.Sprintf(` stroke="%s" stroke-width="1"`, color))
		} else {
			c.rect(x0, by, w, barHeight, color, "")
		}
		end := x0 + w
		if b.v.Min != b.v.Max {
			c.whisker(x0+b.v.Min/div*scale, x0+b.v.Max/div*scale, by+barHeight/2)
			end = max(end, x0+b.v.Max/div*scale)
		}
		c.text(end+5, by+barHeight-1.5, format(b.v.Median), valueSize, true, "start", "")
	}
}

// whisker draws a min..max range at height y.
func (c *canvas) whisker(x1, x2, y float64) {
	c.line(x1, y, x2, y, "#222222", 1.2)
	c.line(x1, y-4, x1, y+4, "#222222", 1.2)
	c.line(x2, y-4, x2, y+4, "#222222", 1.2)
}

// lighter mixes an #rrggbb colour halfway with white.
func lighter(color string) string {
	var r, g, b int
	if _, err := fmt.Sscanf(color, "#%02x%02x%02x", &r, &g, &b); err != nil {
		return color
	}
	mix := func(v int) int { return v + (255-v)*55/100 }
	return fmt.Sprintf("#%02x%02x%02x", mix(r), mix(g), mix(b))
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// axisNumber prints a tick value without trailing zeros.
func axisNumber(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

// textWidth estimates a text's width: exact for monospace (0.6 em a
// character), generous for the proportional font.
func textWidth(s string, size float64, mono bool) float64 {
	em := 0.62
	if mono {
		em = 0.61
	}
	return float64(len([]rune(s))) * size * em
}
