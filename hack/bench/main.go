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
// Usage: bench -nsbox PATH -out DIR [-empty-go PATH] [-embed PATH] [-quick] [-net | -startup | -image [-as-user USER -user-home DIR]] [-rows LIST]
//
// In-sandbox clients reach the host at the sandbox's default gateway, or
// at $NSBOX_BENCH_HOST_ADDR when set.
//
// -rows picks workloads by name (startup, process, parallel, embed-serial, embed-parallel, memory, overlay, net-startup, port,
// out, in, tcp, udp, dns, tcp-parts, profile, image), e.g. -net -rows tcp,udp,dns
// for the round trips alone; the report then has only those.
//
//	bench tcp-client ADDR N   (internal: the in-sandbox latency clients)
//	bench tcp-connect-client ADDR N
//	bench tcp-rtt-client ADDR N
//	bench udp-client ADDR N
//	bench dns-client ADDR N
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is what the command line sets.
type config struct {
	nsbox          string
	emptyGo        string // an empty Go program, built like nsbox, or ""
	embed          string // hack/embedbench, built like nsbox, or ""
	out            string // where benchmarks.md and benchmarks.png go
	work           string // scratch files (traces)
	rounds         int    // startup samples per contender
	parallel       int    // sandboxes per parallel batch
	parallelRounds int
	iperfSeconds   int
	iperfRounds    int
	latencyConns   int
	mtu            int    // -mtu: the link MTU of every user-mode stack, 0 for their defaults
	plainTAP       bool   // -plain-tap: also nsbox --net user without the TAP offloads
	asUser         string // -as-user: the image rows run nsbox as this user (the harness as root, for Docker)
	userHome       string // -user-home: that user's HOME
}

func main() {
	if len(os.Args) >= 3 && strings.HasSuffix(os.Args[1], "-client") {
		runClient(os.Args[1], os.Args[2:])
		return
	}
	cfg := &config{}
	quick := flag.Bool("quick", false, "fewer samples (a smoke run, not for publishing)")
	flag.StringVar(&cfg.nsbox, "nsbox", "bin/nsbox", "the nsbox binary to measure")
	flag.StringVar(&cfg.emptyGo, "empty-go", "", "an empty Go program (hack/bench/emptygo) to time the bare Go runtime start")
	flag.StringVar(&cfg.out, "out", "docs", "directory for benchmarks.md and benchmarks.png")
	flag.StringVar(&cfg.embed, "embed", "", "the embedding program (hack/embedbench) for the sandbox.Start rows")
	startupOnly := flag.Bool("startup", false, "only the startup workloads: startup, process start, --net user start, parallel starts, embedding, idle memory, the launch profile; writes benchmarks-startup.md and benchmarks-startup.png")
	imageOnly := flag.Bool("image", false, "only the image workloads (nsbox run --image against a plain run and docker run, nsbox image pull against docker pull); writes benchmarks-image.md and benchmarks-image.png. Docker needs root: run the harness as root with -as-user")
	flag.StringVar(&cfg.asUser, "as-user", "", "with -image as root: run every nsbox command as this unprivileged user, docker as root")
	flag.StringVar(&cfg.userHome, "user-home", "", "the HOME of -as-user's nsbox commands")
	netOnly := flag.Bool("net", false, "only the network workloads (startup with a network, throughput, latency, RSS); writes benchmarks-net.md and benchmarks-net.png")
	only := flag.String("rows", "", "comma-separated workloads to run instead of all (startup, process, net-startup, port, overlay, parallel, embed-serial, embed-parallel, memory, out, in, tcp, udp, dns, tcp-parts, profile)")
	timelineOut := flag.String("timeline-out", "", "as root: trace replayed starts of nsbox (default map, --map single) and bubblewrap, run as -as-user, with the kernel's scheduler events (tracefs), write them to this file and exit")
	timelineIn := flag.String("timeline", "", "the file -timeline-out wrote, for the startup profile")
	flag.IntVar(&cfg.mtu, "mtu", 0, "link MTU for every user-mode stack (nsbox --mtu, rootlesskit --mtu, pasta --mtu); 0: nsbox's and pasta's default 65520, rootlesskit at 65520")
	flag.BoolVar(&cfg.plainTAP, "plain-tap", false, "also run nsbox --net user with --tap-offload=false (plain frames, no virtio_net_hdr): the offloads' before and after in one run")
	flag.Parse()
	if err := becomeSubreaper(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v: the CPU per start would leave out what a run's orphans do; fix: run on Linux 3.4 or later\n", err)
		os.Exit(1)
	}
	// Seven batches a parallel row: with three, the batch ratio of one
	// quiet run spread 1.35-1.53 between runs (docs/startup.md).
	cfg.rounds, cfg.parallel, cfg.parallelRounds = 60, 100, 7
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
	if *timelineOut != "" {
		if err := writeTimelineFile(cfg, *timelineOut); err != nil {
			fatal(err)
		}
		return
	}
	if cfg.work, err = os.MkdirTemp("", "nsbox-bench-"); err != nil {
		fatal(err)
	}
	defer os.RemoveAll(cfg.work)

	started := time.Now()
	step := func(name string) {
		fmt.Fprintf(os.Stderr, "bench: %-40s (%.0fs)\n", name, time.Since(started).Seconds())
	}
	r := &report{Machine: describeMachine(cfg), Name: "benchmarks"}
	switch {
	case *startupOnly:
		r.Name = "benchmarks-startup"
	case *netOnly:
		r.Name = "benchmarks-net"
	case *imageOnly:
		r.Name = "benchmarks-image"
	}
	// Each row in report order, with the run it belongs to (-net,
	// -startup, or only the whole one); rss and profile come with out and
	// startup.
	var noNet, proc *comparison
	rss := &comparison{}
	rows := []struct {
		name, step   string
		net, startup bool // part of -net, of -startup
		run          func() *comparison
	}{
		{"startup", "startup, no network", false, true, func() *comparison { noNet = startupNoNet(cfg); return noNet }},
		{"net-startup", "startup, user-mode network", true, true, func() *comparison { return startupNet(cfg) }},
		{"port", "nsbox port add", true, false, func() *comparison { return portAdd(cfg) }},
		{"overlay", "startup, --tmp-overlay /", false, false, func() *comparison { return startupOverlay(cfg) }},
		{"process", "process start: nsbox version, empty Go", false, true, func() *comparison { proc = processStart(cfg); return proc }},
		{"parallel", fmt.Sprintf("%d parallel sandboxes", cfg.parallel), false, true, func() *comparison { return parallelStart(cfg) }},
		{"embed-serial", "embedded, serial", false, true, func() *comparison { return embedSerial(cfg) }},
		{"embed-parallel", "embedded, parallel", false, true, func() *comparison { return embedParallel(cfg) }},
		{"memory", "idle memory", false, true, func() *comparison { return idleMemory(cfg) }},
		{"out", "iperf3 sandbox → host", true, false, func() *comparison { return throughputOut(cfg, rss) }},
		{"in", "iperf3 host → sandbox", true, false, func() *comparison { return throughputIn(cfg) }},
		{"tcp", "TCP latency", true, false, func() *comparison { return latency(cfg) }},
		{"udp", "UDP latency", true, false, func() *comparison { return latencyUDP(cfg) }},
		{"dns", "DNS latency", true, false, func() *comparison { return latencyDNS(cfg) }},
	}
	want := func(name string, inNet, inStartup bool) bool {
		switch {
		case *only != "":
			return slices.Contains(strings.Split(*only, ","), name)
		case *netOnly:
			return inNet
		case *startupOnly:
			return inStartup
		case *imageOnly:
			return false
		}
		return true
	}
	for _, row := range rows {
		if want(row.name, row.net, row.startup) {
			step(row.step)
			r.Comparisons = append(r.Comparisons, row.run())
		}
	}
	if want("tcp-parts", true, false) {
		step("TCP latency, connect and round trip apart")
		r.Comparisons = append(r.Comparisons, latencyParts(cfg)...)
		r.Notes = append(r.Notes, latencyBreakdown)
	}
	if *imageOnly || want("image", false, false) {
		step("images: cached start, pull")
		r.Comparisons = append(r.Comparisons, imageRows(cfg)...)
	}
	if rss.Title != "" {
		r.Comparisons = append(r.Comparisons, rss)
	}
	if noNet != nil && want("profile", false, true) {
		step("startup profile")
		r.Profile = profileStartup(cfg, noNet, proc)
		if *timelineIn != "" {
			r.Profile.Timeline = readTimelineFile(*timelineIn)
		}
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

// runClient runs one of the in-sandbox clients (bench MODE ARGS…) and
// exits 1 with the error on failure.
func runClient(mode string, args []string) {
	n, err := strconv.Atoi(args[len(args)-1])
	switch {
	case err != nil:
	case mode == "tcp-client" && len(args) == 2:
		err = tcpClient(args[0], n)
	case mode == "tcp-connect-client" && len(args) == 2:
		err = tcpConnectClient(args[0], n)
	case mode == "tcp-rtt-client" && len(args) == 2:
		err = tcpRTTClient(args[0], n)
	case mode == "udp-client" && len(args) == 2:
		err = udpClient(args[0], n)
	case mode == "dns-client" && len(args) == 2:
		err = dnsClient(args[0], n)
	default:
		err = fmt.Errorf("unknown client or arguments: %s", strings.Join(args, " "))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", mode, err)
		os.Exit(1)
	}
}
