package main

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// bwrapFull is bubblewrap's "everything unshared, read-only /" sandbox,
// the peer for nsbox run without network.
var bwrapFull = []string{"bwrap", "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"}

// startupNoNet: `true` in a full sandbox without network.
func startupNoNet(cfg *config) *comparison {
	c := &comparison{
		Title: "Startup, no network: `true` in a full sandbox",
		Unit:  "ms",
		Contenders: []*contender{
			{Name: "nsbox run", Argv: []string{cfg.nsbox, "run", "--", "true"}},
			{Name: "bwrap --unshare-all", Argv: append(append([]string{}, bwrapFull...), "true")},
			{Name: "unshare -rmpfiun --mount-proc", Argv: []string{"unshare", "-rmpfiun", "--mount-proc", "true"}},
			{Name: "nsbox run --map single", Argv: []string{cfg.nsbox, "run", "--map", "single", "--", "true"}},
		},
		Note: "nsbox maps your subordinate ids through newuidmap/newgidmap by default (as rootlesskit); " +
			"bwrap and unshare -r map only your own id, which `--map single` matches.",
	}
	requireTools(c, map[string]string{"bwrap --unshare-all": "bwrap", "unshare -rmpfiun --mount-proc": "unshare"})
	alternate(cfg.rounds, c.Contenders, sampleCPU)
	noteCPU(c)
	return c
}

// startupNet: `true` with the user-mode network up.
func startupNet(cfg *config) *comparison {
	c := &comparison{
		Title: "Startup with the user-mode network: `true`",
		Unit:  "ms",
		Contenders: []*contender{
			{Name: "nsbox run --net user", Argv: []string{cfg.nsbox, "run", "--net", "user", "--", "true"}},
			{Name: "rootlesskit --net=slirp4netns", Argv: []string{"rootlesskit", "--net=slirp4netns", "--disable-host-loopback", "--copy-up=/etc", "true"}},
			{Name: "nsbox run --net slirp4netns", Argv: []string{cfg.nsbox, "run", "--net", "slirp4netns", "--", "true"}},
			{Name: "nsbox run --net pasta", Argv: []string{cfg.nsbox, "run", "--net", "pasta", "--", "true"}},
		},
	}
	probeInto(cfg, c.Contenders[0], "--net", "user")
	probeInto(cfg, c.Contenders[2], "--net", "slirp4netns")
	probeInto(cfg, c.Contenders[3], "--net", "pasta")
	requireTools(c, map[string]string{"rootlesskit --net=slirp4netns": "rootlesskit"})
	alternate(cfg.rounds/2, c.Contenders, sampleCPU)
	noteCPU(c)
	return c
}

// startupOverlay: a throwaway writable overlay over /.
func startupOverlay(cfg *config) *comparison {
	c := &comparison{
		Title: "Startup with a writable tmpfs overlay over /: `true`",
		Unit:  "ms",
		Contenders: []*contender{
			{Name: "nsbox run --tmp-overlay /", Argv: []string{cfg.nsbox, "run", "--tmp-overlay", "/", "--", "true"}},
			{Name: "nsbox run (no overlay)", Argv: []string{cfg.nsbox, "run", "--", "true"}},
			{Name: "bwrap --overlay-src / --tmp-overlay /", Argv: append(append([]string{}, bwrapFull[:2]...), "--overlay-src", "/", "--tmp-overlay", "/", "--dev", "/dev", "--proc", "/proc", "true")},
		},
		Note: "The ratio against the second row is the cost of the overlay itself. bubblewrap has --tmp-overlay only from 0.10.",
	}
	probeInto(cfg, c.Contenders[0], "--tmp-overlay", "/")
	if _, err := wallTime(c.Contenders[2].Argv); err != nil {
		c.Contenders[2].Missing = "this bubblewrap cannot: " + err.Error()
	}
	alternate(cfg.rounds/2, c.Contenders, func(k *contender) (float64, error) { return wallTime(k.Argv) })
	return c
}

// parallelStart starts n sandboxes at once, several batches per
// contender, alternating; every sandbox must succeed. The values are each
// sandbox's own wall time.
func parallelStart(cfg *config) *comparison {
	n := cfg.parallel
	c := &comparison{
		Title: fmt.Sprintf("%d sandboxes started in parallel: `true` (per-sandbox wall time)", n),
		Unit:  "ms",
		Contenders: []*contender{
			{Name: "nsbox run", Argv: []string{cfg.nsbox, "run", "--", "true"}},
			{Name: "bwrap --unshare-all", Argv: append(append([]string{}, bwrapFull...), "true")},
		},
	}
	requireTools(c, map[string]string{"bwrap --unshare-all": "bwrap"})
	batches := map[string][]float64{}
	for r := 0; r < cfg.parallelRounds; r++ {
		for i := range c.Contenders {
			k := c.Contenders[(r+i)%len(c.Contenders)]
			if k.Missing != "" {
				continue
			}
			start := time.Now()
			vals, cpus, errs := batch(k.Argv, n)
			batches[k.Name] = append(batches[k.Name], float64(time.Since(start))/float64(time.Millisecond))
			k.Values = append(k.Values, vals...)
			k.CPU = append(k.CPU, cpus...)
			k.Failures += len(errs)
			if len(errs) > 0 {
				k.LastErr = errs[0].Error()
			}
		}
	}
	c.Note = fmt.Sprintf("%d batches each; every sandbox must exit 0 (failures are counted in the table).", cfg.parallelRounds)
	c.Batch = map[string]float64{}
	for _, k := range c.Contenders {
		if m, ok := median(batches[k.Name]); ok {
			c.Batch[k.Name] = m
			c.Note += fmt.Sprintf(" Whole batch, median: %s %.0f ms.", k.Name, m)
		}
	}
	if a, b := c.Batch[c.Contenders[0].Name], c.Batch[c.Contenders[1].Name]; a > 0 && b > 0 {
		c.Note += fmt.Sprintf(" Batch ratio %s / %s: %.2f.", c.Contenders[0].Name, c.Contenders[1].Name, a/b)
	}
	noteCPU(c)
	return c
}

// batch starts n copies of argv behind one barrier and returns the wall
// time and the CPU time of each that succeeded (with an even share of
// the orphans the batch left) and the errors of the others.
func batch(argv []string, n int) ([]float64, []float64, []error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var vals, cpus []float64
	var errs []error
	gate := make(chan struct{})
	reapOrphans(0) // what an earlier row left is not this batch's
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			v, cpu, err := run(argv)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			vals, cpus = append(vals, v), append(cpus, cpu)
		}()
	}
	close(gate)
	wg.Wait()
	// The orphans of the whole batch, shared evenly: which start left
	// which is not known.
	if orphans := reapOrphans(orphanWait); len(cpus) > 0 {
		for i := range cpus {
			cpus[i] += orphans / float64(len(cpus))
		}
	}
	return vals, cpus, errs
}

// noteCPU adds to c's note the median CPU time per run of each
// contender that recorded one, and nsbox's ratio to each peer.
func noteCPU(c *comparison) {
	var parts []string
	base, okBase := median(c.nsbox().CPU)
	for _, k := range c.Contenders {
		m, ok := median(k.CPU)
		if !ok {
			continue
		}
		p := fmt.Sprintf("%s %s ms", k.Name, num(m))
		if k != c.nsbox() && okBase && m > 0 {
			p += fmt.Sprintf(" (%s / this: %.2f)", c.nsbox().Name, base/m)
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return
	}
	if c.Note != "" {
		c.Note += " "
	}
	c.Note += "CPU per start, median (user+system of the whole process tree from wait4's rusage, with the orphans a run leaves, which the harness reaps as a subreaper; perf's instruction counter is not available in this VM): " + strings.Join(parts, ", ") + "."
}

// processStart times `nsbox version` (the runtime start, every package
// init, a print) against an empty Go program built as nsbox is and a
// static C program: what a Go CLI pays before it does any work.
func processStart(cfg *config) *comparison {
	c := &comparison{Title: "Process start: `nsbox version` against an empty Go program", Unit: "ms", Contenders: []*contender{
		{Name: "nsbox version", Argv: []string{cfg.nsbox, "version"}},
		{Name: "empty Go program", Argv: []string{cfg.emptyGo}},
		{Name: "busybox true (static C)", Argv: []string{"busybox", "true"}},
	}, Note: "The empty Go program is hack/bench/emptygo, linked statically as nsbox is (make bench builds it)."}
	if cfg.emptyGo == "" {
		c.Contenders[1].Missing = "not built (hack/bench.sh passes -empty-go)"
	}
	requireTools(c, map[string]string{"busybox true (static C)": "busybox"})
	alternate(cfg.rounds, c.Contenders, sampleCPU)
	noteCPU(c)
	return c
}

// probeInto marks k missing when nsbox rejects flags (or they fail).
func probeInto(cfg *config, k *contender, flags ...string) {
	if err := probe(cfg.nsbox, flags...); err != nil {
		k.Missing = missingReason(err)
	}
}

// requireTools marks contenders whose program is not installed.
func requireTools(c *comparison, tools map[string]string) {
	for _, k := range c.Contenders {
		if tool, ok := tools[k.Name]; ok && k.Missing == "" {
			if _, err := exec.LookPath(tool); err != nil {
				k.Missing = tool + " is not installed (make bench as root installs it)"
			}
		}
	}
}
