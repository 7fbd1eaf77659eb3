package bench

import (
	"fmt"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// WritePlot saves a bar chart of delivered packets/s by mode (UDP modes that
// ran). The file name's extension picks the format: .svg, .png, .pdf.
func (r *Report) WritePlot(path string) error {
	var names []string
	var vals plotter.Values
	for _, x := range r.Results {
		if !x.Ran() || x.Traffic == TCP || x.Traffic == Flood {
			continue
		}
		names = append(names, x.Mode)
		vals = append(vals, x.DeliveredPPS.Median/1e3)
	}
	if len(vals) == 0 {
		return fmt.Errorf("write plot %s: no UDP mode ran", path)
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("qguard bench, kernel %s, %d CPUs", r.Kernel, r.CPUs)
	p.Y.Label.Text = "thousand packets/s at the sink"
	bars, err := plotter.NewBarChart(vals, vg.Points(14))
	if err != nil {
		return fmt.Errorf("write plot %s: %w", path, err)
	}
	bars.Color = plotter.DefaultLineStyle.Color
	p.Add(bars)
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = 0.9
	p.X.Tick.Label.XAlign = -1
	p.X.Tick.Label.YAlign = -0.5
	w := max(vg.Length(len(names))*vg.Points(28)+2*vg.Inch, 6*vg.Inch)
	if err := p.Save(w, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("write plot %s: %w", path, err)
	}
	return nil
}
