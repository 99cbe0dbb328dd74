package main

import (
	"fmt"
	"image/color"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// drawChart plots, for every peer that has numbers, how nsbox compares:
// the peer's time over nsbox's (or nsbox's throughput over the peer's),
// so above 1 always means nsbox is better.
func drawChart(cs []*comparison, path string) error {
	var vals plotter.Values
	var labels []string
	for _, c := range cs {
		if len(c.Contenders) == 0 {
			continue
		}
		for _, k := range c.Contenders[1:] {
			if strings.HasPrefix(k.Name, "nsbox") {
				continue // a variant of nsbox, not a peer
			}
			r, ok := ratio(c.nsbox(), k)
			if !ok || r == 0 {
				continue
			}
			if !c.HigherBetter {
				r = 1 / r
			}
			vals = append(vals, r)
			labels = append(labels, fmt.Sprintf("%s: vs %s", shortTitle(c.Title), k.Name))
		}
	}
	p := plot.New()
	p.Title.Text = "nsbox against its peers (same run; > 1 means nsbox is better)\n" +
		"workloads whose nsbox feature is not in this build are left out: see benchmarks.md"
	p.X.Label.Text = "advantage: peer time / nsbox time, or nsbox Gb/s / peer Gb/s"
	if len(vals) == 0 {
		p.Title.Text += " — no comparisons had numbers"
		return p.Save(8*vg.Inch, 2*vg.Inch, path)
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(12))
	if err != nil {
		return err
	}
	bars.Horizontal = true
	bars.Color = color.RGBA{R: 60, G: 110, B: 180, A: 255}
	p.Add(bars)
	line, err := plotter.NewLine(plotter.XYs{{X: 1, Y: -0.5}, {X: 1, Y: float64(len(vals)) - 0.5}})
	if err == nil {
		line.Color = color.RGBA{R: 200, A: 255}
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(line)
	}
	p.NominalY(labels...)
	p.X.Min = 0
	if p.X.Max < 1.1 {
		p.X.Max = 1.1
	}
	return p.Save(11*vg.Inch, vg.Length(1.2+0.28*float64(len(vals)))*vg.Inch, path)
}

// shortTitle is a comparison's title up to its first colon or parenthesis.
func shortTitle(t string) string {
	if i := strings.IndexAny(t, ":("); i > 0 {
		t = t[:i]
	}
	return strings.TrimSpace(t)
}
