package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The kernel's view of one start. strace cannot follow the default map:
// a traced setuid exec loses its privilege, newuidmap fails and the start
// takes another path. The kernel's own trace points (tracefs: fork, exec,
// exit, every context switch) see the real start, helpers included, with
// no stop of any process; they need root. So hack/bench.sh, as root, runs
// `bench -timeline-out FILE -as-user USER` first, which starts nsbox and
// bubblewrap as that user under the trace and writes what it read, and
// the unprivileged run that writes the report gets `-timeline FILE`.

// timelineMarks are the moments of a start, in report order, each in ms
// since the launcher's exec. A helper's "exec'd" is when its execve is
// done: the kernel has loaded it, and its dynamic loader starts.
var timelineMarks = []string{
	"the launcher's first child forked",
	"newuidmap forked", "newuidmap exec'd", "newuidmap exited",
	"newgidmap forked", "newgidmap exec'd", "newgidmap exited",
	"the command exec'd", "the command exited", "the launcher exited",
}

// timelineCPU are the parts of a start's on-CPU time, in report order.
var timelineCPU = []string{"launcher", "newuidmap", "newgidmap", partFirst, partOther, "the command"}

// The parts of a start's CPU that are not one program (analyzeStart).
const (
	partFirst = "the launcher's first child (nsbox: the stage; bubblewrap: PID 1)"
	partOther = "the other processes (nsbox: holder, PID 1; both: the command before its exec)"
)

// startTimeline is one start, or the medians of many.
type startTimeline struct {
	Marks map[string]float64 `json:"marks"` // ms since the launcher's exec
	CPU   map[string]float64 `json:"cpu"`   // ms on a CPU, from the context switches
}

// timelineResult is what the root run hands to the report.
type timelineResult struct {
	Rows  []timelineRow `json:"rows"`
	Runs  int           `json:"runs"`  // traced starts a row
	Clock string        `json:"clock"` // the trace clock used
	// CPUIDMicros is what one CPUID instruction takes here (a hypervisor
	// may trap it); CPUIDCount how many newuidmap executes before its
	// main (counted by single-stepping it), CPUIDErr why either is absent.
	CPUIDMicros float64 `json:"cpuid_us"`
	CPUIDCount  int     `json:"cpuid_count"`
	CPUIDErr    string  `json:"cpuid_err,omitempty"`
	Err         string  `json:"err,omitempty"`
}

type timelineRow struct {
	Name   string        `json:"name"`
	Median startTimeline `json:"median"`
	Failed int           `json:"failed"`
}

// ftraceEvent is one line of tracefs's trace file.
type ftraceEvent struct {
	MS     float64 // the trace clock, in ms
	Name   string  // sched_process_fork, sched_switch, …
	Fields string
}

var (
	ftraceLine = regexp.MustCompile(`^\s*.*-\d+\s+\[\d+\]\s+\S+\s+(\d+\.\d+): (\w+): (.*)$`)
	forkFields = regexp.MustCompile(`\bpid=(\d+) child_comm=.* child_pid=(\d+)`)
	execFields = regexp.MustCompile(`^filename=(\S+) pid=(\d+)`)
	exitFields = regexp.MustCompile(`\bpid=(\d+)`)
	switchPids = regexp.MustCompile(`\bprev_pid=(\d+) .*==> .*\bnext_pid=(\d+)`)
)

// parseFtrace reads the events of a tracefs trace dump; other lines (the
// header, "lost events") are skipped.
func parseFtrace(text string) []ftraceEvent {
	var evs []ftraceEvent
	for _, l := range strings.Split(text, "\n") {
		m := ftraceLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		s, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			continue
		}
		evs = append(evs, ftraceEvent{MS: s * 1000, Name: m[2], Fields: m[3]})
	}
	return evs
}

// analyzeStart finds the start whose launcher is pid (its exec is the
// start's zero) in evs and returns its moments and CPU, or false when its
// exec is not in the trace. Its processes are the launcher and every
// process forked from one of them. The start ends at the last exit of
// its processes or at the exec of the next launcher (next).
//
// Each process's time on a CPU goes to one part (timelineCPU): a map
// helper's from its fork (its spawn is its cost), the command's from its
// exec (before it, nsbox's PID 1 or bubblewrap's copy sets it up), the
// launcher's first child's (nsbox's stage) apart, and every other
// process's (nsbox's holder and PID 1, bubblewrap's PID 1) together.
func analyzeStart(evs []ftraceEvent, pid int, launcher, command string, next int) (startTimeline, bool) {
	t := startTimeline{Marks: map[string]float64{}, CPU: map[string]float64{}}
	i0 := -1
	for i, e := range evs {
		if path, p := execOf(e); e.Name == "sched_process_exec" && p == pid && strings.HasSuffix(path, "/"+filepath.Base(launcher)) {
			i0 = i
		}
	}
	if i0 < 0 {
		return t, false
	}
	t0 := evs[i0].MS
	family := map[int]bool{pid: true}
	part := map[int]string{pid: "launcher"} // the part a process's time goes to, where it is not the default
	forkedAt := map[int]float64{}           // the launcher's children
	live := 1
	running := map[int]float64{pid: t0} // the launcher runs at its exec
	stop := func(p int, at float64) {
		if since, ok := running[p]; ok {
			name, ok := part[p]
			if !ok {
				name = partOther
			}
			t.CPU[name] += at - since
			delete(running, p)
		}
	}
	mark := func(name string, at float64) {
		if _, ok := t.Marks[name]; !ok {
			t.Marks[name] = at - t0
		}
	}
scan:
	for _, e := range evs[i0+1:] {
		if _, p := execOf(e); e.Name == "sched_process_exec" && p != pid && p == next {
			break
		}
		switch e.Name {
		case "sched_switch":
			m := switchPids.FindStringSubmatch(e.Fields)
			if m == nil {
				continue
			}
			prev, _ := strconv.Atoi(m[1])
			nxt, _ := strconv.Atoi(m[2])
			stop(prev, e.MS)
			if family[nxt] {
				running[nxt] = e.MS
			}
		case "sched_process_fork":
			m := forkFields.FindStringSubmatch(e.Fields)
			if m == nil {
				continue
			}
			parent, _ := strconv.Atoi(m[1])
			child, _ := strconv.Atoi(m[2])
			if !family[parent] {
				continue
			}
			family[child] = true
			live++
			if parent == pid {
				part[child] = pending + strconv.Itoa(child) // a map helper, if it execs one
				if _, ok := t.Marks["the launcher's first child forked"]; !ok {
					part[child] = partFirst
				}
				mark("the launcher's first child forked", e.MS)
				forkedAt[child] = e.MS
			}
		case "sched_process_exec":
			path, p := execOf(e)
			if !family[p] {
				continue
			}
			switch base := filepath.Base(path); {
			case base == "newuidmap" || base == "newgidmap":
				// Its time before the exec is its spawn: the helper's.
				stop(p, e.MS)
				if name := part[p]; strings.HasPrefix(name, pending) {
					t.CPU[base] += t.CPU[name]
					delete(t.CPU, name)
				}
				if at, ok := forkedAt[p]; ok {
					mark(base+" forked", at)
				}
				part[p] = base
				running[p] = e.MS
				mark(base+" exec'd", e.MS)
			case base == command:
				stop(p, e.MS)
				part[p] = "the command"
				running[p] = e.MS
				mark("the command exec'd", e.MS)
			}
		case "sched_process_exit":
			m := exitFields.FindStringSubmatch(e.Fields)
			if m == nil {
				continue
			}
			p, _ := strconv.Atoi(m[1])
			if !family[p] {
				continue
			}
			switch name := part[p]; {
			case p == pid:
				mark("the launcher exited", e.MS)
			case name == "newuidmap" || name == "newgidmap" || name == "the command":
				mark(name+" exited", e.MS)
			}
			if live--; live == 0 {
				stop(p, e.MS)
				break scan
			}
		}
	}
	// A child of the launcher that execs no helper is one of the others.
	for name, v := range t.CPU {
		if strings.HasPrefix(name, pending) {
			t.CPU[partOther] += v
			delete(t.CPU, name)
		}
	}
	return t, true
}

// pending names the CPU of a child of the launcher until it execs a map
// helper (analyzeStart).
const pending = "pending "

// execOf is the filename and pid of a sched_process_exec event.
func execOf(e ftraceEvent) (path string, pid int) {
	if m := execFields.FindStringSubmatch(e.Fields); m != nil {
		pid, _ = strconv.Atoi(m[2])
		return m[1], pid
	}
	return "", 0
}

// medianTimeline is the per-moment and per-part median of ts; a moment
// or part counts where at least half of the starts have it.
func medianTimeline(ts []startTimeline) startTimeline {
	return startTimeline{
		Marks: mediansOf(ts, timelineMarks, marksOf),
		CPU:   mediansOf(ts, timelineCPU, cpuOf),
	}
}

func marksOf(t startTimeline) map[string]float64 { return t.Marks }
func cpuOf(t startTimeline) map[string]float64   { return t.CPU }

func mediansOf(ts []startTimeline, names []string, of func(startTimeline) map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for _, n := range names {
		var vs []float64
		for _, t := range ts {
			if v, ok := of(t)[n]; ok {
				vs = append(vs, v)
			}
		}
		if len(vs) > 0 && 2*len(vs) >= len(ts) {
			out[n], _ = median(vs)
		}
	}
	return out
}

// tracefs is the kernel's trace directory, mounted by openTracefs if it
// was not; restore puts back what it changed.
type tracefs struct {
	dir     string
	mounted bool
	saved   map[string]string
}

func openTracefs() (*tracefs, error) {
	for _, d := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(filepath.Join(d, "trace")); err == nil {
			return &tracefs{dir: d}, nil
		}
	}
	d := "/sys/kernel/tracing"
	if err := syscall.Mount("nodev", d, "tracefs", 0, ""); err != nil {
		return nil, fmt.Errorf("no tracefs: mount it on %s: %w", d, err)
	}
	return &tracefs{dir: d, mounted: true}, nil
}

func (f *tracefs) read(name string) string {
	b, _ := os.ReadFile(filepath.Join(f.dir, name))
	return string(b)
}

func (f *tracefs) write(name, value string) error {
	if err := os.WriteFile(filepath.Join(f.dir, name), []byte(value), 0); err != nil {
		return fmt.Errorf("tracefs %s: %w", name, err)
	}
	return nil
}

// start enables the scheduler's fork, exec, exit and switch events on a
// monotonic clock, after saving what it changes. It refuses a tracefs
// that is already tracing events.
func (f *tracefs) start() (clock string, err error) {
	if strings.TrimSpace(f.read("tracing_on")) == "1" && strings.TrimSpace(f.read("set_event")) != "" {
		return "", fmt.Errorf("tracefs at %s is in use (tracing_on is 1 with events set); fix: stop that trace", f.dir)
	}
	f.saved = map[string]string{}
	for _, n := range []string{"set_event", "buffer_size_kb", "tracing_on"} {
		f.saved[n] = f.read(n)
	}
	clocks := f.read("trace_clock")
	if m := regexp.MustCompile(`\[(\w+)\]`).FindStringSubmatch(clocks); m != nil {
		f.saved["trace_clock"] = m[1]
	}
	clock = "mono"
	if !strings.Contains(clocks, "mono") {
		clock = "global"
	}
	steps := [][2]string{
		{"tracing_on", "0"}, {"trace_clock", clock}, {"buffer_size_kb", "16384"},
		{"set_event", "sched:sched_process_fork\nsched:sched_process_exec\nsched:sched_process_exit\nsched:sched_switch\n"},
		{"trace", ""}, {"tracing_on", "1"},
	}
	for _, s := range steps {
		if err := f.write(s[0], s[1]); err != nil {
			f.restore()
			return "", err
		}
	}
	return clock, nil
}

// stop ends the trace and returns it.
func (f *tracefs) stop() (string, error) {
	if err := f.write("tracing_on", "0"); err != nil {
		return "", err
	}
	return f.read("trace"), nil
}

func (f *tracefs) restore() {
	_ = f.write("tracing_on", "0")
	_ = f.write("set_event", strings.ReplaceAll(f.saved["set_event"], "\n", " ")+"\n")
	if c := f.saved["trace_clock"]; c != "" {
		_ = f.write("trace_clock", c)
	}
	if kb := strings.TrimSpace(f.saved["buffer_size_kb"]); kb != "" && !strings.Contains(kb, "(") {
		_ = f.write("buffer_size_kb", kb)
	}
	_ = f.write("trace", "")
	if v := strings.TrimSpace(f.saved["tracing_on"]); v != "" {
		_ = f.write("tracing_on", v)
	}
	if f.mounted {
		_ = syscall.Unmount(f.dir, 0)
	}
}

// recordTimeline is the root run: the default map, --map single and
// bubblewrap, alternating, rounds starts each as u under the kernel's
// trace, in dir (u's to write), plus the CPUID figures.
func recordTimeline(cfg *config, u *imageUser, dir string, rounds int) *timelineResult {
	res := &timelineResult{Runs: rounds}
	res.CPUIDMicros, res.CPUIDCount, res.CPUIDErr = cpuidCost()
	rows := []struct {
		name     string
		argv     []string
		launcher string
	}{
		{"nsbox run", []string{cfg.nsbox, "run", "--", "true"}, cfg.nsbox},
		{"nsbox run --map single", []string{cfg.nsbox, "run", "--map", "single", "--", "true"}, cfg.nsbox},
		{"bwrap --unshare-all", append(append([]string{}, bwrapFull...), "true"), "bwrap"},
	}
	if p, err := exec.LookPath("bwrap"); err == nil {
		rows[2].argv[0], rows[2].launcher = p, p
	} else {
		rows = rows[:2]
	}
	// The user's runs get an environment of their own, not root's (whose
	// XDG_RUNTIME_DIR, say, would be no place for the user's state).
	env := []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + dir, "HOME=" + os.Getenv("HOME")}
	if u != nil {
		env = []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + dir, "HOME=" + u.home, "USER=" + cfg.asUser, "LOGNAME=" + cfg.asUser}
	}
	runAs := func(argv []string) (int, error) {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir, cmd.Env = dir, env
		if u != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred}
		}
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
		}
		return cmd.Process.Pid, nil
	}
	// The first start of a command line is the Go launcher's, which
	// records the plan every later one replays: not traced.
	for _, r := range rows {
		if _, err := runAs(r.argv); err != nil {
			res.Err = err.Error()
			return res
		}
	}
	f, err := openTracefs()
	if err != nil {
		res.Err = err.Error()
		return res
	}
	if res.Clock, err = f.start(); err != nil {
		res.Err = err.Error()
		return res
	}
	defer f.restore()
	type start struct{ row, pid int }
	var starts []start
	failed := make([]int, len(rows))
	for i := 0; i < rounds; i++ {
		for k := range rows {
			r := (i + k) % len(rows)
			pid, err := runAs(rows[r].argv)
			if err != nil {
				failed[r]++
				continue
			}
			starts = append(starts, start{r, pid})
			time.Sleep(2 * time.Millisecond) // let the exits land apart
		}
	}
	text, err := f.stop()
	if err != nil {
		res.Err = err.Error()
		return res
	}
	evs := parseFtrace(text)
	per := make([][]startTimeline, len(rows))
	for i, s := range starts {
		next := 0
		if i+1 < len(starts) {
			next = starts[i+1].pid
		}
		if t, ok := analyzeStart(evs, s.pid, rows[s.row].launcher, "true", next); ok {
			per[s.row] = append(per[s.row], t)
		} else {
			failed[s.row]++
		}
	}
	for i, r := range rows {
		res.Rows = append(res.Rows, timelineRow{Name: r.name, Median: medianTimeline(per[i]), Failed: failed[i]})
	}
	return res
}

// writeTimelineFile is `bench -timeline-out FILE`.
func writeTimelineFile(cfg *config, path string) error {
	u, err := lookupImageUser(cfg.asUser)
	if err != nil {
		return err
	}
	if u != nil {
		u.home = cfg.userHome
	}
	dir := os.TempDir()
	res := recordTimeline(cfg, u, dir, cfg.rounds/2)
	b, err := json.MarshalIndent(res, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// readTimelineFile is `bench -timeline FILE`.
func readTimelineFile(path string) *timelineResult {
	b, err := os.ReadFile(path)
	if err != nil {
		return &timelineResult{Err: fmt.Sprintf("no timeline: %v (hack/bench.sh records it when run as root)", err)}
	}
	var res timelineResult
	if err := json.Unmarshal(b, &res); err != nil {
		return &timelineResult{Err: fmt.Sprintf("%s: %v", path, err)}
	}
	return &res
}

// cpuidCost times one CPUID instruction and counts those newuidmap runs
// before its main.
func cpuidCost() (micros float64, count int, why string) {
	if runtime.GOARCH != "amd64" {
		return 0, 0, "CPUID is an x86 instruction"
	}
	const n = 2000
	began := time.Now()
	for i := 0; i < n; i++ {
		cpuid(4, uint32(i%4))
	}
	micros = float64(time.Since(began).Nanoseconds()) / n / 1000
	path, err := exec.LookPath("newuidmap")
	if err != nil {
		return micros, 0, "no newuidmap to count in"
	}
	count, err = countCPUID(path)
	if err != nil {
		return micros, 0, err.Error()
	}
	return micros, count, ""
}

// countCPUID single-steps path (run with no arguments) from its exec to
// its first openat, which in a dynamically linked glibc program is its
// loader opening ld.so.cache, after the loader probed the CPU's features
// and caches; it counts the CPUID instructions (0f a2) on the way. A
// single step costs tens of µs in a VM: stepping the whole program would
// take most of a minute.
func countCPUID(path string) (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.Command(path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s traced: %w", path, err)
	}
	pid := cmd.Process.Pid
	defer func() {
		_ = cmd.Process.Kill()
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, 0, nil)
	}()
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		return 0, err
	}
	count, buf := 0, make([]byte, 2)
	for steps := 0; steps < 5_000_000 && ws.Stopped(); steps++ {
		var regs syscall.PtraceRegs
		if err := syscall.PtraceGetRegs(pid, &regs); err != nil {
			return 0, fmt.Errorf("single-step %s: %w", path, err)
		}
		if n, _ := syscall.PtracePeekText(pid, uintptr(regs.PC()), buf); n == 2 && buf[0] == 0x0f {
			switch {
			case buf[1] == 0xa2:
				count++
			case buf[1] == 0x05 && regs.Rax == syscall.SYS_OPENAT:
				return count, nil
			}
		}
		if err := syscall.PtraceSingleStep(pid); err != nil {
			return 0, fmt.Errorf("single-step %s: %w", path, err)
		}
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("single-stepping %s did not reach an openat", path)
}

// writeTimeline is the report's section for the timeline.
func writeTimeline(b *strings.Builder, t *timelineResult) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("### One start as the kernel sees it (tracefs, every process)\n\n")
	if t.Err != "" {
		w("Not recorded: %s\n\n", mdEscape(t.Err))
		return
	}
	w("The scheduler's fork, exec, exit and switch events (tracefs, clock %s, nothing stopped), recorded as root while the test user ran each command %d times, alternating, after one untraced start of each (which records nsbox's plan: these are replayed starts). Medians, in ms since the launcher's exec; CPU is the time each process spent on a CPU in the start: a map helper's from its fork (its spawn is its cost), the command's from its exec (its set-up before, in nsbox's PID 1's copy, counts with the other processes). A helper's \"exec'd\" is when the kernel has loaded it, before its dynamic loader runs.\n\n", t.Clock, t.Runs)
	w("| | %s |\n|---|", strings.Join(rowNames(t), " | "))
	for range t.Rows {
		w("---|")
	}
	w("\n")
	cell := func(m map[string]float64, n string) string {
		if v, ok := m[n]; ok {
			return fmt.Sprintf("%.2f", v)
		}
		return ""
	}
	rows := func(names []string, label string, of func(startTimeline) map[string]float64) {
		for _, n := range names {
			had := false
			for _, r := range t.Rows {
				_, ok := of(r.Median)[n]
				had = had || ok
			}
			if !had {
				continue
			}
			w("| %s%s |", label, n)
			for _, r := range t.Rows {
				w(" %s |", cell(of(r.Median), n))
			}
			w("\n")
		}
	}
	rows(timelineMarks, "", marksOf)
	rows(timelineCPU, "CPU: ", cpuOf)
	w("| failed starts |")
	for _, r := range t.Rows {
		w(" %d |", r.Failed)
	}
	w("\n\n")
	switch {
	case t.CPUIDErr != "":
		w("CPUID not measured: %s.\n\n", mdEscape(t.CPUIDErr))
	default:
		w("One CPUID instruction takes %.2f µs here (a hypervisor that traps it makes it slow; on bare metal it is tens of nanoseconds). newuidmap executes %d of them before it opens its first file (single-stepped: glibc's dynamic loader probing the CPU's features and caches), so each map helper spends about **%.2f ms** in CPUID alone; glibc programs pay it at every start (bubblewrap, and the `true` every row runs), nsbox's launcher, built with musl, does not.\n\n", t.CPUIDMicros, t.CPUIDCount, t.CPUIDMicros*float64(t.CPUIDCount)/1000)
	}
}

func rowNames(t *timelineResult) []string {
	var ns []string
	for _, r := range t.Rows {
		ns = append(ns, "`"+r.Name+"`")
	}
	return ns
}
