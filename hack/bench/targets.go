package main

import (
	"fmt"
	"strings"
)

// A target is one of issue 26's startup goals: the ratio of two medians
// of the same run, at most Max.
type target struct {
	What     string  // the goal in words
	Row      string  // the comparison's Title prefix
	Num, Den string  // contender names; the ratio is Num's median over Den's
	Batch    bool    // compare the whole-batch medians, not the per-run ones
	CPU      bool    // compare the CPU medians, not the wall times
	Max      float64 // the goal; 0: shown for reference, no goal
}

// startupTargets are the goals of issue 26 (and ANCHORS.md for the
// user-mode network), checked against this run's rows.
var startupTargets = []target{
	{What: "`run --map single` ≤ 1.0× bwrap", Row: "Startup, no network", Num: "nsbox run --map single", Den: "bwrap --unshare-all", Max: 1.0},
	{What: "`run` (default map) ≤ 1.2× bwrap", Row: "Startup, no network", Num: "nsbox run", Den: "bwrap --unshare-all", Max: 1.2},
	{What: "100 parallel starts ≤ 1.5× bwrap's batch", Row: "100 sandboxes started in parallel", Num: "nsbox run", Den: "bwrap --unshare-all", Batch: true, Max: 1.5},
	{What: "CPU per start in the parallel batch (no goal of its own)", Row: "100 sandboxes started in parallel", Num: "nsbox run", Den: "bwrap --unshare-all", CPU: true},
	{What: "`run --map single` CPU per start (no goal of its own)", Row: "Startup, no network", Num: "nsbox run --map single", Den: "bwrap --unshare-all", CPU: true},
	{What: "`nsbox version` ≤ 1.2× an empty static Go program", Row: "Process start", Num: "nsbox version", Den: "empty Go program", Max: 1.2},
	{What: "`run --net user` ≤ 0.25× rootlesskit + slirp4netns (ANCHORS.md)", Row: "Startup with the user-mode network", Num: "nsbox run --net user", Den: "rootlesskit --net=slirp4netns", Max: 0.25},
}

// targetTable renders the targets whose rows ran as a markdown table, or
// "" when none did.
func targetTable(cs []*comparison) string {
	var b strings.Builder
	for _, t := range startupTargets {
		var c *comparison
		for _, x := range cs {
			if strings.HasPrefix(x.Title, t.Row) {
				c = x
			}
		}
		if c == nil {
			continue
		}
		nk, dk := c.find(t.Num), c.find(t.Den)
		if nk == nil || dk == nil {
			continue
		}
		a, okA := median(nk.Values)
		d, okD := median(dk.Values)
		switch {
		case t.Batch:
			a, okA = c.Batch[t.Num]
			d, okD = c.Batch[t.Den]
		case t.CPU:
			a, okA = median(nk.CPU)
			d, okD = median(dk.CPU)
		}
		verdict, measured := "no data", "—"
		if okA && okD && d > 0 {
			r := a / d
			measured = fmt.Sprintf("%.2f× (%s / %s ms)", r, num(a), num(d))
			switch {
			case t.Max == 0:
				verdict = ""
			case r <= t.Max:
				verdict = "met"
			default:
				verdict = "not met"
			}
		}
		if b.Len() == 0 {
			b.WriteString("| target (issue 26) | this run | |\n|---|---|---|\n")
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", t.What, measured, verdict)
	}
	return b.String()
}
