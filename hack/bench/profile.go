package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// startupProfile is the evidence for "where startup time goes".
type startupProfile struct {
	ProcessStart *comparison  // nsbox version vs a static C `true`
	InitTotalMS  float64      // sum of init() clock time, median over runs
	InitEndMS    float64      // when the last init ended, since runtime start
	InitTop      []initRecord // the slowest package inits (one run)
	NewUIDMapMS  float64      // one newuidmap exec, median
	NewGIDMapMS  float64      // one newgidmap exec, median
	HelperErr    string       // why newuidmap/newgidmap could not be timed
	Phases       []phase      // medians over traced runs of --map single
	TracedRuns   int          // how many traces the phases come from
	PhaseErr     string       // why the phases could not be measured
	Summary      []syscallRow // strace -c -f: nsbox vs bwrap
	SummaryErr   string
	AutoMS       float64 // nsbox run -- true, median (from the startup row)
	SingleMS     float64 // nsbox run --map single -- true, median
	BwrapMS      float64
}

// syscallRow is one line of the strace -c comparison.
type syscallRow struct {
	Who   string
	Total int
	Top   []syscallCount
}

// profileStartup measures what the startup costs are made of. noNet is
// the finished startupNoNet comparison (its medians are reused).
func profileStartup(cfg *config, noNet *comparison) *startupProfile {
	p := &startupProfile{}
	for _, k := range noNet.Contenders {
		m, _ := median(k.Values)
		switch k.Name {
		case "nsbox run":
			p.AutoMS = m
		case "nsbox run --map single":
			p.SingleMS = m
		case "bwrap --unshare-all":
			p.BwrapMS = m
		}
	}

	// Go runtime + init: a Go program that does nothing vs a static C one.
	p.ProcessStart = &comparison{Title: "Process start", Unit: "ms", Contenders: []*contender{
		{Name: "nsbox version", Argv: []string{cfg.nsbox, "version"}},
		{Name: "busybox true (static C)", Argv: []string{"busybox", "true"}},
		{Name: "empty Go program", Argv: []string{cfg.emptyGo}},
	}}
	if cfg.emptyGo == "" {
		p.ProcessStart.Contenders[2].Missing = "not built (hack/bench.sh passes -empty-go)"
	}
	requireTools(p.ProcessStart, map[string]string{"busybox true (static C)": "busybox"})
	alternate(cfg.rounds, p.ProcessStart.Contenders, func(k *contender) (float64, error) { return wallTime(k.Argv) })

	var totals, ends []float64
	for i := 0; i < 10; i++ {
		cmd := exec.Command(cfg.nsbox, "version")
		cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
		out, _ := cmd.CombinedOutput()
		recs := parseInitTrace(string(out))
		sum, end := 0.0, 0.0
		for _, r := range recs {
			sum += r.ClockMS
			if r.StartMS+r.ClockMS > end {
				end = r.StartMS + r.ClockMS
			}
		}
		totals, ends = append(totals, sum), append(ends, end)
		if i == 0 {
			sort.Slice(recs, func(a, b int) bool { return recs[a].ClockMS > recs[b].ClockMS })
			if len(recs) > 5 {
				recs = recs[:5]
			}
			p.InitTop = recs
		}
	}
	p.InitTotalMS, _ = median(totals)
	p.InitEndMS, _ = median(ends)

	p.NewUIDMapMS, p.NewGIDMapMS, p.HelperErr = timeHelpers(12)
	p.Phases, p.TracedRuns, p.PhaseErr = tracePhases(cfg, 15)

	for _, who := range []struct {
		name string
		argv []string
	}{
		{"nsbox run --map single", []string{cfg.nsbox, "run", "--map", "single", "--", "true"}},
		{"bwrap --unshare-all", append(append([]string{}, bwrapFull...), "true")},
	} {
		f := filepath.Join(cfg.work, "strace-c.txt")
		argv := append([]string{"strace", "-f", "-c", "-o", f}, who.argv...)
		if _, err := outputOf(argv); err != nil {
			p.SummaryErr = err.Error()
			continue
		}
		b, _ := os.ReadFile(f)
		rows, total := parseStraceSummary(string(b))
		sort.Slice(rows, func(a, b int) bool { return rows[a].Calls > rows[b].Calls })
		if len(rows) > 6 {
			rows = rows[:6]
		}
		p.Summary = append(p.Summary, syscallRow{Who: who.name, Total: total, Top: rows})
	}
	return p
}

// tracePhases traces `nsbox run --map single -- true` n times with
// strace's seccomp-bpf filter (only the marker calls stop the tracee, so
// the Go runtime's hundreds of other calls run at full speed) and returns
// the median of each phase. --map single, because newuidmap is setuid and
// a traced setuid exec loses its privilege.
func tracePhases(cfg *config, n int) ([]phase, int, string) {
	f := filepath.Join(cfg.work, "strace-phases.txt")
	var all [][]phase
	var lastErr string
	for i := 0; i < n; i++ {
		argv := []string{"strace", "-f", "--seccomp-bpf", "-ttt", "-e", "trace=execve,socketpair,unshare,clone,clone3,mount,exit_group", "-o", f,
			cfg.nsbox, "run", "--map", "single", "--", "true"}
		if _, err := outputOf(argv); err != nil {
			lastErr = err.Error()
			continue
		}
		lines, err := readLines(f)
		if err != nil {
			lastErr = err.Error()
			continue
		}
		ph, err := startupPhases(lines)
		if err != nil {
			lastErr = err.Error()
			continue
		}
		all = append(all, ph)
	}
	if len(all) == 0 {
		return nil, 0, lastErr
	}
	out := make([]phase, len(all[0]))
	for j := range out {
		var vs []float64
		for _, ph := range all {
			vs = append(vs, ph[j].MS)
		}
		m, _ := median(vs)
		out[j] = phase{Name: all[0][j].Name, MS: m}
	}
	return out, len(all), ""
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		lines = append(lines, s.Text())
	}
	return lines, s.Err()
}

// timeHelpers times newuidmap and newgidmap on their own: for each
// sample a fresh `unshare --user` process waits on a pipe while we run
// each helper once against it, as nsbox does (own id to 0, then the
// subordinate range from 1).
func timeHelpers(n int) (uidMS, gidMS float64, errText string) {
	u, err := user.Current()
	if err != nil {
		return 0, 0, err.Error()
	}
	subuid, err1 := subRange("/etc/subuid", u.Username, u.Uid)
	subgid, err2 := subRange("/etc/subgid", u.Username, u.Gid)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Sprintf("no subordinate ids for %s: %v %v", u.Username, err1, err2)
	}
	var us, gs []float64
	for i := 0; i < n; i++ {
		holder := exec.Command("unshare", "--user", "sh", "-c", "read x")
		in, err := holder.StdinPipe()
		if err != nil {
			return 0, 0, err.Error()
		}
		if err := holder.Start(); err != nil {
			return 0, 0, "unshare --user: " + err.Error()
		}
		time.Sleep(20 * time.Millisecond) // let unshare(2) happen before we write the map
		pid := strconv.Itoa(holder.Process.Pid)
		tu, erru := wallTime([]string{"newuidmap", pid, "0", u.Uid, "1", "1", subuid[0], subuid[1]})
		tg, errg := wallTime([]string{"newgidmap", pid, "0", u.Gid, "1", "1", subgid[0], subgid[1]})
		in.Close()
		holder.Wait()
		if erru != nil || errg != nil {
			return 0, 0, fmt.Sprintf("%v %v", erru, errg)
		}
		us, gs = append(us, tu), append(gs, tg)
	}
	uidMS, _ = median(us)
	gidMS, _ = median(gs)
	return uidMS, gidMS, ""
}

// subRange returns the first "start count" of name's (or id's) range in
// an /etc/subuid-style file.
func subRange(path, name, id string) ([2]string, error) {
	lines, err := readLines(path)
	if err != nil {
		return [2]string{}, err
	}
	for _, l := range lines {
		f := strings.Split(l, ":")
		if len(f) == 3 && (f[0] == name || f[0] == id) {
			return [2]string{f[1], f[2]}, nil
		}
	}
	return [2]string{}, fmt.Errorf("%s has no range for %s", path, name)
}
