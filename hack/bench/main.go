// Command bench measures nsbox against its peers (bubblewrap, unshare,
// rootlesskit with slirp4netns, pasta) side by side and writes
// docs/benchmarks.md and docs/benchmarks.png. hack/bench.sh runs it as an
// unprivileged user; `make bench` runs that.
//
// Every comparison alternates the contenders within one run (A B C, B C
// A, …) and reports medians and nsbox/peer ratios: absolute numbers
// depend on the machine, ratios much less. A feature this nsbox build
// lacks is detected by probing its flag and reported as "not available
// in this build", never skipped silently.
//
// Usage: bench -nsbox PATH -out DIR [-empty-go PATH] [-embed PATH] [-quick] [-net | -startup]
//
// In-sandbox clients reach the host at the sandbox's default gateway, or
// at $NSBOX_BENCH_HOST_ADDR when set.
//
//	bench tcp-client ADDR N   (internal: the in-sandbox latency client)
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// config is what the command line sets.
type config struct {
	nsbox          string
	emptyGo        string // an empty Go program, built like nsbox, or ""
	embed          string // hack/bench/embed, built like nsbox, or ""
	out            string // where benchmarks.md and benchmarks.png go
	work           string // scratch files (traces)
	rounds         int    // startup samples per contender
	parallel       int    // sandboxes per parallel batch
	parallelRounds int
	iperfSeconds   int
	iperfRounds    int
	latencyConns   int
}

func main() {
	if len(os.Args) == 4 && os.Args[1] == "tcp-client" {
		n, err := strconv.Atoi(os.Args[3])
		if err == nil {
			err = tcpClient(os.Args[2], n)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench tcp-client:", err)
			os.Exit(1)
		}
		return
	}
	cfg := &config{}
	quick := flag.Bool("quick", false, "fewer samples (a smoke run, not for publishing)")
	flag.StringVar(&cfg.nsbox, "nsbox", "bin/nsbox", "the nsbox binary to measure")
	flag.StringVar(&cfg.emptyGo, "empty-go", "", "an empty Go program (hack/bench/emptygo) to time the bare Go runtime start")
	flag.StringVar(&cfg.out, "out", "docs", "directory for benchmarks.md and benchmarks.png")
	flag.StringVar(&cfg.embed, "embed", "", "the embedding program (hack/bench/embed) for the sandbox.Start rows")
	startupOnly := flag.Bool("startup", false, "only the startup workloads (no network): startup, parallel starts, embedding, idle memory, the launch profile; writes benchmarks-startup.md and benchmarks-startup.png")
	netOnly := flag.Bool("net", false, "only the network workloads (startup with a network, throughput, latency, RSS); writes benchmarks-net.md and benchmarks-net.png")
	flag.Parse()
	cfg.rounds, cfg.parallel, cfg.parallelRounds = 60, 100, 3
	cfg.iperfSeconds, cfg.iperfRounds, cfg.latencyConns = 3, 3, 100
	if *quick {
		cfg.rounds, cfg.parallelRounds = 10, 1
		cfg.iperfSeconds, cfg.iperfRounds, cfg.latencyConns = 1, 1, 20
	}
	abs, err := filepath.Abs(cfg.nsbox)
	if err != nil {
		fatal(err)
	}
	cfg.nsbox = abs
	if cfg.work, err = os.MkdirTemp("", "nsbox-bench-"); err != nil {
		fatal(err)
	}
	defer os.RemoveAll(cfg.work)

	started := time.Now()
	step := func(name string) {
		fmt.Fprintf(os.Stderr, "bench: %-40s (%.0fs)\n", name, time.Since(started).Seconds())
	}
	r := &report{Machine: describeMachine(cfg), Name: "benchmarks"}
	if *startupOnly {
		r.Name = "benchmarks-startup"
		step("startup, no network")
		noNet := startupNoNet(cfg)
		step(fmt.Sprintf("%d parallel sandboxes", cfg.parallel))
		par := parallelStart(cfg)
		step("embedded, serial")
		embS := embedSerial(cfg)
		step("embedded, parallel")
		embP := embedParallel(cfg)
		step("idle memory")
		mem := idleMemory(cfg)
		step("startup profile")
		r.Profile = profileStartup(cfg, noNet)
		r.Comparisons = []*comparison{noNet, par, embS, embP, mem}
	} else if *netOnly {
		r.Name = "benchmarks-net"
		step("startup, user-mode network")
		net := startupNet(cfg)
		rss := &comparison{}
		step("iperf3 sandbox → host")
		out := throughputOut(cfg, rss)
		step("iperf3 host → sandbox")
		in := throughputIn(cfg)
		step("TCP latency")
		lat := latency(cfg)
		r.Comparisons = []*comparison{net, out, in, lat, rss}
	} else {
		step("startup, no network")
		noNet := startupNoNet(cfg)
		step("startup, user-mode network")
		net := startupNet(cfg)
		step("startup, --tmp-overlay /")
		ovl := startupOverlay(cfg)
		step(fmt.Sprintf("%d parallel sandboxes", cfg.parallel))
		par := parallelStart(cfg)
		step("embedded, serial")
		embS := embedSerial(cfg)
		step("embedded, parallel")
		embP := embedParallel(cfg)
		step("idle memory")
		mem := idleMemory(cfg)
		step("iperf3 sandbox → host")
		rss := &comparison{}
		out := throughputOut(cfg, rss)
		step("iperf3 host → sandbox")
		in := throughputIn(cfg)
		step("TCP latency")
		lat := latency(cfg)
		step("startup profile")
		r.Profile = profileStartup(cfg, noNet)
		r.Comparisons = []*comparison{noNet, net, ovl, par, embS, embP, mem, out, in, lat, rss}
	}
	r.Duration = time.Since(started)
	step("writing")

	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		fatal(err)
	}
	if err := drawChart(r.Comparisons, filepath.Join(cfg.out, r.Name+".png")); err != nil {
		fatal(fmt.Errorf("draw the chart: %w", err))
	}
	if err := os.WriteFile(filepath.Join(cfg.out, r.Name+".md"), []byte(r.markdown()), 0o644); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
