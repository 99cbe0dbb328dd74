package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"time"
)

// A contender is one side of a comparison: nsbox or a peer, with the
// command line that does the same job.
type contender struct {
	Name string   // shown in the report, e.g. "bwrap"
	Argv []string // what runs; empty when Missing is set
	// Missing says why this contender cannot run in this build or on this
	// host (e.g. "not available in this build: nsbox rejects --net");
	// the report prints it instead of numbers.
	Missing string

	Values []float64 // one per successful sample, in the comparison's unit
	// CPU is the user+system time of each successful run's whole process
	// tree in ms (wait4's rusage: the process, every descendant it waited
	// for, and the orphans it left, which the harness reaps), where the
	// row records it (sampleCPU).
	CPU      []float64
	Failures int
	LastErr  string
}

// A comparison is one workload measured for nsbox (always Contenders[0])
// and its peers, alternating, in the same run.
type comparison struct {
	Title        string
	Unit         string // "ms", "µs", "Gb/s", "MB"
	HigherBetter bool
	Contenders   []*contender
	Note         string
	// Batch is each contender's median whole-batch wall time in ms, for
	// the rows that start many at once.
	Batch map[string]float64
}

// find returns the contender called name, or nil.
func (c *comparison) find(name string) *contender {
	for _, k := range c.Contenders {
		if k.Name == name {
			return k
		}
	}
	return nil
}

// nsbox is the comparison's nsbox contender.
func (c *comparison) nsbox() *contender { return c.Contenders[0] }

// alternate runs one sample of every runnable contender per round, in an
// order that rotates each round (A B C, B C A, …), so drift in the
// machine's load hits all contenders alike. sample returns the value of
// one run in the comparison's unit.
func alternate(rounds int, cs []*contender, sample func(*contender) (float64, error)) {
	var live []*contender
	for _, c := range cs {
		if c.Missing == "" {
			live = append(live, c)
		}
	}
	for r := 0; r < rounds; r++ {
		for i := range live {
			c := live[(r+i)%len(live)]
			v, err := sample(c)
			if err != nil {
				c.Failures++
				c.LastErr = err.Error()
				continue
			}
			c.Values = append(c.Values, v)
		}
	}
}

// wallTime runs argv to completion and returns its wall time in ms (it
// reaps no orphans: some rows keep children of their own running); a
// non-zero exit is an error carrying the last line of stderr.
func wallTime(argv []string) (float64, error) {
	wall, _, err := run(argv)
	return wall, err
}

// sampleCPU runs k once as wallTime does, records the CPU time of its
// process tree in k.CPU and returns the wall time: a sample function for
// alternate.
func sampleCPU(k *contender) (float64, error) {
	reapOrphans(0) // what an earlier row left is not this run's
	wall, cpu, err := timed(k.Argv)
	if err == nil {
		k.CPU = append(k.CPU, cpu)
	}
	return wall, err
}

// timed runs argv to completion and returns its wall time and the CPU
// time (user+system) of its whole process tree, both in ms: it and the
// descendants it reaped, and those it left to the harness (reapOrphans,
// after the wall time is taken). Not for runs side by side: batch uses
// run and reaps once all are done.
func timed(argv []string) (wall, cpu float64, err error) {
	wall, cpu, err = run(argv)
	orphans := reapOrphans(orphanWait)
	if err != nil {
		return 0, 0, err
	}
	return wall, cpu + orphans, nil
}

// run runs argv to completion and returns its wall time and the CPU time
// (user+system) of it and the descendants it reaped, both in ms.
func run(argv []string) (wall, cpu float64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, 0, commandError(argv, err, stderr.String())
	}
	st := cmd.ProcessState
	return float64(d) / float64(time.Millisecond), float64(st.UserTime()+st.SystemTime()) / float64(time.Millisecond), nil
}

// commandError names the command, its failure and its last stderr line.
func commandError(argv []string, err error, stderr string) error {
	line := lastLine(stderr)
	if line != "" {
		return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, line)
	}
	return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// quantile returns the q-quantile (0..1) of vs by the nearest-rank method;
// NaN-free: an empty slice gives 0, ok false.
func quantile(vs []float64, q float64) (float64, bool) {
	if len(vs) == 0 {
		return 0, false
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	if q <= 0 {
		return s[0], true
	}
	rank := int(q*float64(len(s))+0.999999) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(s) {
		rank = len(s) - 1
	}
	return s[rank], true
}

// median is the middle value (the mean of the two middle ones for an even
// count).
func median(vs []float64) (float64, bool) {
	if len(vs) == 0 {
		return 0, false
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

// ratio is nsbox's median over the peer's: for times, below 1 means
// nsbox is faster; for throughput, above 1 means nsbox is faster.
func ratio(nsbox, peer *contender) (float64, bool) {
	a, ok1 := median(nsbox.Values)
	b, ok2 := median(peer.Values)
	if !ok1 || !ok2 || b == 0 {
		return 0, false
	}
	return a / b, true
}

// errUnavailable marks a feature this nsbox build rejects.
var errUnavailable = errors.New("not available in this build")

// outputOf runs argv (60 s at most) and returns its stdout.
func outputOf(argv []string, env ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if len(env) > 0 {
		cmd.Env = append(cmd.Environ(), env...)
	}
	if err := cmd.Run(); err != nil {
		return stdout.String(), commandError(argv, err, stderr.String())
	}
	return stdout.String(), nil
}
