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
	ProcessStart   *comparison  // nsbox version vs a static C `true`
	InitTotalMS    float64      // sum of init() clock time, median over runs
	InitEndMS      float64      // when the last init ended, since runtime start
	InitTop        []initRecord // the slowest package inits (one run)
	NewUIDMapMS    float64      // one newuidmap exec, median
	NewGIDMapMS    float64      // one newgidmap exec, median
	HelperErr      string       // why newuidmap/newgidmap could not be timed
	Phases         []phase      // medians over traced runs of --map single
	TracedRuns     int          // how many traces the phases come from
	PhaseErr       string       // why the phases could not be measured
	PhasesReplayed bool         // Phases are of replayed starts (else the Go launcher's)
	Summary        []syscallRow // strace -c -f: nsbox vs bwrap
	SummaryErr     string
	MapAutoMS      float64 // nsbox run -- true, median, alternated with the helpers
	MapSingleMS    float64 // nsbox run --map single -- true, same loop
	AutoMS         float64 // nsbox run -- true, median (from the startup row)
	SingleMS       float64 // nsbox run --map single -- true, median
	BwrapMS        float64
	Timeline       *timelineResult // the kernel's view of replayed starts (-timeline), or nil
}

// syscallRow is one line of the strace -c comparison.
type syscallRow struct {
	Who   string
	Total int
	Top   []syscallCount
}

// profileStartup measures what the startup costs are made of. noNet is
// the finished startupNoNet comparison (its medians are reused), proc
// the processStart one or nil.
func profileStartup(cfg *config, noNet, proc *comparison) *startupProfile {
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

	// Go runtime + init: a Go program that does nothing vs a static C
	// one (the "process" row's, when it ran).
	if p.ProcessStart = proc; proc == nil {
		p.ProcessStart = processStart(cfg)
	}

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

	p.mapCosts(cfg)
	p.Phases, p.TracedRuns, p.PhasesReplayed, p.PhaseErr = tracePhases(cfg, 15)

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
// a traced setuid exec loses its privilege. The traces of replayed starts
// (startupPhases), the path a repeated `nsbox run` takes, are the ones
// kept when there are any; else the Go launcher's. replayed says which.
func tracePhases(cfg *config, n int) (phases []phase, runs int, replayed bool, errText string) {
	f := filepath.Join(cfg.work, "strace-phases.txt")
	var byPath [2][][]phase // [0] the Go launcher's, [1] the replay's
	var lastErr string
	for i := 0; i < n; i++ {
		argv := []string{"strace", "-f", "--seccomp-bpf", "-ttt", "-e", "trace=execve,socketpair,unshare,fork,vfork,clone,clone3,mount,open_tree,fsmount,move_mount,mount_setattr,exit_group", "-o", f,
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
		ph, rep, err := startupPhases(lines)
		if err != nil {
			lastErr = err.Error()
			continue
		}
		k := 0
		if rep {
			k = 1
		}
		byPath[k] = append(byPath[k], ph)
	}
	all := byPath[0]
	if replayed = len(byPath[1]) > 0; replayed {
		all = byPath[1]
	}
	if len(all) == 0 {
		return nil, 0, false, lastErr
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
	return out, len(all), replayed, ""
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

// mapCosts times, alternating in one loop, `nsbox run -- true` (auto
// maps), `nsbox run --map single -- true` and newuidmap + newgidmap on
// their own, so the difference of the first two and the helpers' share
// of it come from the same moments. The helpers are timed against a
// fresh `unshare --user` process each (strace would drop their setuid
// bit), run as nsbox runs them: own id to 0, the subordinate range from 1.
func (p *startupProfile) mapCosts(cfg *config) {
	u, err := user.Current()
	if err != nil {
		p.HelperErr = err.Error()
		return
	}
	subuid, err1 := subRange("/etc/subuid", u.Username, u.Uid)
	subgid, err2 := subRange("/etc/subgid", u.Username, u.Gid)
	if err1 != nil || err2 != nil {
		p.HelperErr = fmt.Sprintf("no subordinate ids for %s: %v %v", u.Username, err1, err2)
		return
	}
	auto := &contender{Name: "auto", Argv: []string{cfg.nsbox, "run", "--", "true"}}
	single := &contender{Name: "single", Argv: []string{cfg.nsbox, "run", "--map", "single", "--", "true"}}
	helpers := &contender{Name: "helpers"}
	var us, gs []float64
	alternate(cfg.rounds/2, []*contender{auto, single, helpers}, func(k *contender) (float64, error) {
		if k != helpers {
			return wallTime(k.Argv)
		}
		holder := exec.Command("unshare", "--user", "sh", "-c", "read x")
		in, err := holder.StdinPipe()
		if err != nil {
			return 0, err
		}
		if err := holder.Start(); err != nil {
			return 0, fmt.Errorf("unshare --user: %w", err)
		}
		defer func() { in.Close(); holder.Wait() }()
		// Wait until unshare(2) happened: our user namespace link changes.
		self, _ := os.Readlink("/proc/self/ns/user")
		for i := 0; i < 500; i++ {
			if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", holder.Process.Pid)); ns != "" && ns != self {
				break
			}
			time.Sleep(time.Millisecond)
		}
		pid := strconv.Itoa(holder.Process.Pid)
		tu, err := wallTime([]string{"newuidmap", pid, "0", u.Uid, "1", "1", subuid[0], subuid[1]})
		if err != nil {
			return 0, err
		}
		tg, err := wallTime([]string{"newgidmap", pid, "0", u.Gid, "1", "1", subgid[0], subgid[1]})
		if err != nil {
			return 0, err
		}
		us, gs = append(us, tu), append(gs, tg)
		return tu + tg, nil
	})
	if helpers.Failures > 0 && len(us) == 0 {
		p.HelperErr = helpers.LastErr
	}
	p.NewUIDMapMS, _ = median(us)
	p.NewGIDMapMS, _ = median(gs)
	p.MapAutoMS, _ = median(auto.Values)
	p.MapSingleMS, _ = median(single.Values)
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
