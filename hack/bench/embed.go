package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The embedding path: a Go program that has already started runs
// sandboxes through sandbox.Start and Wait (hack/embedbench), against the
// same program running bwrap through os/exec. No process start of nsbox
// itself is timed: only what each sandbox costs the program that embeds.

// embedSerial: sandboxes one after the other, each one's wall time.
func embedSerial(cfg *config) *comparison {
	c := &comparison{
		Title: "Embedded: a Go program runs `true` sandboxes one after the other (per-sandbox wall time)",
		Unit:  "ms",
		Contenders: []*contender{
			{Name: "sandbox.Start+Wait, own ids", Argv: []string{cfg.embed, "nsbox", "10", "1"}},
			{Name: "os/exec bwrap --unshare-all", Argv: []string{cfg.embed, "bwrap", "10", "1"}},
			{Name: "sandbox.Start+Wait, sandbox.Default (subids)", Argv: []string{cfg.embed, "nsbox-auto", "10", "1"}},
		},
		Note: "hack/embedbench: one process per round runs 10 sandboxes in a loop and times each; " +
			"the first contender maps only the caller's own ids, as bwrap does.",
	}
	embedRequire(cfg, c)
	alternateBatches(c, cfg.rounds/10, nil)
	return c
}

// embedParallel: many sandboxes at once from one program.
func embedParallel(cfg *config) *comparison {
	n := strconv.Itoa(cfg.parallel)
	c := &comparison{
		Title: fmt.Sprintf("Embedded: a Go program starts %s `true` sandboxes at once (per-sandbox wall time)", n),
		Unit:  "ms",
		Contenders: []*contender{
			{Name: "sandbox.Start+Wait, own ids", Argv: []string{cfg.embed, "nsbox", n, n}},
			{Name: "os/exec bwrap --unshare-all", Argv: []string{cfg.embed, "bwrap", n, n}},
		},
	}
	embedRequire(cfg, c)
	batches := map[string][]float64{}
	alternateBatches(c, cfg.parallelRounds, batches)
	c.Note = fmt.Sprintf("%d batches each, one goroutine per sandbox.", cfg.parallelRounds)
	for _, k := range c.Contenders {
		if m, ok := median(batches[k.Name]); ok {
			c.Note += fmt.Sprintf(" Whole batch, median: %s %.0f ms.", k.Name, m)
		}
	}
	if a, ok := median(batches[c.Contenders[0].Name]); ok {
		if b, ok := median(batches[c.Contenders[1].Name]); ok && b > 0 {
			c.Note += fmt.Sprintf(" Batch ratio nsbox/bwrap: %.2f.", a/b)
		}
	}
	return c
}

func embedRequire(cfg *config, c *comparison) {
	if cfg.embed == "" {
		for _, k := range c.Contenders {
			k.Missing = "not built (hack/bench.sh passes -embed)"
		}
		return
	}
	requireTools(c, map[string]string{"os/exec bwrap --unshare-all": "bwrap"})
}

// alternateBatches runs each contender's embed command once per round,
// rotating the order, and collects the per-sandbox times it prints; the
// whole-batch times go to batches (if not nil) by contender name.
func alternateBatches(c *comparison, rounds int, batches map[string][]float64) {
	var live []*contender
	for _, k := range c.Contenders {
		if k.Missing == "" {
			live = append(live, k)
		}
	}
	for r := 0; r < rounds; r++ {
		for i := range live {
			k := live[(r+i)%len(live)]
			vals, batch, err := runEmbed(k.Argv)
			if err != nil {
				k.Failures++
				k.LastErr = err.Error()
				continue
			}
			k.Values = append(k.Values, vals...)
			if batches != nil {
				batches[k.Name] = append(batches[k.Name], batch)
			}
		}
	}
}

// runEmbed runs the embed program and parses what it prints.
func runEmbed(argv []string) (vals []float64, batch float64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, 0, commandError(argv, err, stderr.String())
	}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "batch "); ok {
			batch, err = strconv.ParseFloat(rest, 64)
		} else {
			var v float64
			v, err = strconv.ParseFloat(line, 64)
			vals = append(vals, v)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%s: output line %q: %w", strings.Join(argv, " "), line, err)
		}
	}
	return vals, batch, nil
}

// idleMemory: the resident memory a sandbox costs while its command
// sleeps, every process of it but the command: nsbox's launcher (by then
// the small supervisor it hands off to) and PID 1, bwrap's two processes.
func idleMemory(cfg *config) *comparison {
	c := &comparison{
		Title: "Memory of an idle sandbox: RSS of every process but the command (`sleep`)",
		Unit:  "MB",
		Contenders: []*contender{
			{Name: "nsbox run", Argv: []string{cfg.nsbox, "run", "--", "sleep"}},
			{Name: "bwrap --unshare-all", Argv: append(append([]string{}, bwrapFull...), "sleep")},
			{Name: "nsbox run, NSBOX_NO_HANDOFF=1 (the Go launcher stays)", Argv: []string{"env", "NSBOX_NO_HANDOFF=1", cfg.nsbox, "run", "--", "sleep"}},
		},
		Note: "Sampled 1 s after the command started (nsbox hands an idle sandbox from its Go launcher to a small supervisor after 100 ms). " +
			"RSS counts the pages of the binary a process touched even when other processes share them; PSS would be lower for both.",
	}
	requireTools(c, map[string]string{"bwrap --unshare-all": "bwrap"})
	rounds := cfg.rounds / 6
	if rounds < 3 {
		rounds = 3
	}
	alternate(rounds, c.Contenders, func(k *contender) (float64, error) { return idleRSS(k.Argv) })
	return c
}

// idleRSS starts argv with a unique sleep, waits 1 s, and sums VmRSS
// (MB) of the process started and its descendants but the sleep.
func idleRSS(argv []string) (float64, error) {
	arg := fmt.Sprintf("30.%d", time.Now().UnixNano()%1000000)
	cmd := exec.Command(argv[0], append(argv[1:len(argv):len(argv)], arg)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	// Every process of the sandbox: a bwrap without --die-with-parent
	// would outlive its launcher, and hold stderr open for Wait.
	defer func() {
		for _, pid := range descendants(cmd.Process.Pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		cmd.Wait()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if tree := descendants(cmd.Process.Pid); hasCommand(tree, "sleep "+arg) {
			break
		}
		if time.Now().After(deadline) {
			return 0, commandError(argv, fmt.Errorf("sleep %s did not start in 10 s", arg), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second)
	kb := 0
	tree := descendants(cmd.Process.Pid)
	for _, pid := range tree {
		if cmdline(pid) == "sleep "+arg {
			continue
		}
		kb += statusKB(pid, "VmRSS:")
	}
	return float64(kb) / 1024, nil
}

// descendants returns root and every process below it.
func descendants(root int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		_, ppid := statusOf(pid)
		children[ppid] = append(children[ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

func hasCommand(pids []int, line string) bool {
	for _, p := range pids {
		if cmdline(p) == line {
			return true
		}
	}
	return false
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ")
}

// statusKB reads a "Key: N kB" line of /proc/PID/status; 0 if absent.
func statusKB(pid int, key string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == key {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}
