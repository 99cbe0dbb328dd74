package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// inGateway runs a shell command with $GW set to the sandbox's default
// gateway, the address every user-mode stack here (slirp4netns' 10.0.2.2,
// pasta's copy of the host's gateway) forwards to the host's loopback.
// NSBOX_BENCH_HOST_ADDR, when set, overrides it for a stack that reaches
// the host elsewhere.
func inGateway(script string) []string {
	return []string{"sh", "-c", `GW=${NSBOX_BENCH_HOST_ADDR:-$(ip route show default | awk '{print $3; exit}')}; ` + script}
}

// netSandboxes are the ways to run argv with a user-mode network; the
// nsbox ones first. forward is the port spec (host 127.0.0.1:P to port
// 5201 inside) or "" for none.
func netSandboxes(cfg *config, forward string, argv []string) []*contender {
	p := func(flags ...string) []string {
		out := []string{cfg.nsbox, "run"}
		out = append(out, flags...)
		if cfg.mtu != 0 {
			out = append(out, "--mtu", strconv.Itoa(cfg.mtu))
		}
		if forward != "" {
			out = append(out, "-p", forward)
		} else {
			// The clients inside dial the host's 127.0.0.1 through the
			// gateway, which nsbox refuses unless asked (the peers
			// here do not disable host loopback).
			out = append(out, "--allow-host-loopback")
		}
		return append(append(out, "--"), argv...)
	}
	rk := func(driver string) []string {
		out := []string{"rootlesskit", "--net=slirp4netns", "--mtu=" + strconv.Itoa(cmp.Or(cfg.mtu, 65520))}
		if forward != "" {
			out = append(out, "--port-driver="+driver, "-p", forward)
		}
		return append(out, argv...)
	}
	pasta := []string{"pasta", "--config-net"}
	if cfg.mtu != 0 {
		pasta = append(pasta, "--mtu", strconv.Itoa(cfg.mtu))
	}
	if forward != "" {
		// 127.0.0.1:P:5201/tcp → pasta's -t 127.0.0.1/P:5201
		parts := strings.Split(strings.TrimSuffix(forward, "/tcp"), ":")
		pasta = append(pasta, "-t", parts[0]+"/"+parts[1]+":"+parts[2])
	}
	pasta = append(append(pasta, "--"), argv...)
	probeFlags := [][]string{{"--net", "user"}, {"--net", "slirp4netns"}, {"--net", "pasta"}}
	if cfg.plainTAP {
		probeFlags = slices.Insert(probeFlags, 1, []string{"--net", "user", "--tap-offload=false"})
	}
	var cs []*contender
	for _, fl := range probeFlags {
		cs = append(cs, &contender{Name: "nsbox " + strings.Join(fl, " "), Argv: p(fl...)})
	}
	nb := len(cs)
	cs = append(cs, &contender{Name: "rootlesskit slirp4netns", Argv: rk("builtin")}, &contender{Name: "pasta", Argv: pasta})
	if forward != "" {
		cs[nb].Name = "rootlesskit slirp4netns, builtin ports"
		cs = slices.Insert(cs, nb+1, &contender{Name: "rootlesskit slirp4netns, slirp4netns ports", Argv: rk("slirp4netns")})
	}
	for i, fl := range probeFlags {
		if forward != "" {
			fl = append(fl, "-p", freeForward())
		}
		probeInto(cfg, cs[i], fl...)
	}
	for _, k := range cs[nb:] {
		if _, err := exec.LookPath(k.Argv[0]); err != nil {
			k.Missing = k.Argv[0] + " is not installed (make bench as root installs it)"
		}
	}
	return cs
}

// freeForward is a port spec for a free host port, forwarded to 5201.
func freeForward() string {
	return fmt.Sprintf("127.0.0.1:%d:5201/tcp", freePort())
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 40000 + os.Getpid()%20000
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// throughputOut: iperf3 from inside the sandbox to a server on the host's
// 127.0.0.1; also samples the launcher's peak RSS into rss.
func throughputOut(cfg *config, rss *comparison) *comparison {
	port := freePort()
	srv := exec.Command("iperf3", "-s", "-B", "127.0.0.1", "-p", strconv.Itoa(port))
	c := &comparison{
		Title:        "Throughput sandbox → host (iperf3 to the host's 127.0.0.1)",
		Unit:         "Gb/s",
		HigherBetter: true,
	}
	client := fmt.Sprintf(`exec iperf3 -c "$GW" -p %d -t %d -J`, port, cfg.iperfSeconds)
	c.Contenders = netSandboxes(cfg, "", inGateway(client))
	c.Contenders = append(c.Contenders, &contender{Name: "host loopback, no sandbox",
		Argv: []string{"iperf3", "-c", "127.0.0.1", "-p", strconv.Itoa(port), "-t", strconv.Itoa(cfg.iperfSeconds), "-J"}})
	c.Note = fmt.Sprintf("iperf3 -t %d, one stream, %d rounds; every stack at MTU %d, host loopback not disabled so the gateway reaches the host's 127.0.0.1.", cfg.iperfSeconds, cfg.iperfRounds, cmp.Or(cfg.mtu, 65520))
	if err := srv.Start(); err != nil {
		for _, k := range c.Contenders {
			k.Missing = "iperf3 server: " + err.Error()
		}
		return c
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	waitListening(port)
	peaks := map[string][]float64{}
	alternate(cfg.iperfRounds, c.Contenders, func(k *contender) (float64, error) {
		cmd := exec.Command(k.Argv[0], k.Argv[1:]...)
		stop := watchRSS(cmd, func(mb float64) { peaks[k.Name] = append(peaks[k.Name], mb) })
		v, err := runIperf(cmd, k.Argv)
		stop()
		return v, err
	})
	rss.Title = "Peak RSS of the network side with traffic flowing (launcher + network helper)"
	rss.Unit = "MB"
	for _, k := range c.Contenders[:len(c.Contenders)-1] {
		r := &contender{Name: k.Name, Missing: k.Missing, Values: peaks[k.Name]}
		rss.Contenders = append(rss.Contenders, r)
	}
	rss.Note = "VmHWM of the process started (nsbox's launcher, rootlesskit's parent, pasta) plus any slirp4netns/pasta/passt helper below it, read every 50 ms during the sandbox → host iperf3 runs."
	return c
}

// throughputIn: iperf3 from the host to a server inside the sandbox,
// through a forwarded port.
func throughputIn(cfg *config) *comparison {
	c := &comparison{
		Title:        "Throughput host → sandbox through a forwarded port (-p 127.0.0.1:P:5201/tcp)",
		Unit:         "Gb/s",
		HigherBetter: true,
		Note:         fmt.Sprintf("iperf3 -t %d, one stream, server inside the sandbox, client on the host; %d rounds; every stack at MTU %d.", cfg.iperfSeconds, cfg.iperfRounds, cmp.Or(cfg.mtu, 65520)),
	}
	c.Contenders = netSandboxes(cfg, "127.0.0.1:PORT:5201/tcp", []string{"iperf3", "-s", "-1", "-p", "5201"})
	alternate(cfg.iperfRounds, c.Contenders, func(k *contender) (float64, error) {
		port := strconv.Itoa(freePort())
		argv := make([]string, len(k.Argv))
		for i, a := range k.Argv {
			argv[i] = strings.ReplaceAll(a, "PORT", port)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.iperfSeconds+30)*time.Second)
		defer cancel()
		srv := exec.CommandContext(ctx, argv[0], argv[1:]...)
		var stderr strings.Builder
		srv.Stderr = &stderr
		if err := srv.Start(); err != nil {
			return 0, err
		}
		defer func() { srv.Process.Kill(); srv.Wait() }()
		deadline := time.Now().Add(15 * time.Second)
		for {
			cl := exec.Command("iperf3", "-c", "127.0.0.1", "-p", port, "-t", strconv.Itoa(cfg.iperfSeconds), "-J")
			v, err := runIperf(cl, cl.Args)
			if err == nil {
				return v, nil
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return 0, fmt.Errorf("%v (sandbox: %s)", err, lastLine(stderr.String()))
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return c
}

// runIperf runs an iperf3 client (-J) and returns the received Gb/s.
func runIperf(cmd *exec.Cmd, argv []string) (float64, error) {
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := stderr.String()
		if e := iperfError(stdout.String()); e != "" {
			msg = e
		}
		return 0, commandError(argv, err, msg)
	}
	return parseIperf([]byte(stdout.String()))
}

// iperfResult is the part of iperf3 -J output the benchmark reads.
type iperfResult struct {
	Error string `json:"error"`
	End   struct {
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
}

// parseIperf reads iperf3 -J output and returns the receiver's Gb/s.
func parseIperf(out []byte) (float64, error) {
	var r iperfResult
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, fmt.Errorf("read iperf3 -J output: %w", err)
	}
	if r.Error != "" {
		return 0, errors.New("iperf3: " + r.Error)
	}
	if r.End.SumReceived.BitsPerSecond <= 0 {
		return 0, errors.New("iperf3 -J output has no received throughput")
	}
	return r.End.SumReceived.BitsPerSecond / 1e9, nil
}

func iperfError(out string) string {
	var r iperfResult
	if json.Unmarshal([]byte(out), &r) == nil {
		return r.Error
	}
	return ""
}

// waitListening polls until something listens on 127.0.0.1:port (5 s).
func waitListening(port int) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return
		}
	}
}

// watchRSS samples, every 50 ms until stop is called, the VmHWM of cmd's
// process plus that of any network helper below it, and reports the last
// (largest) sum in MB. It starts cmd.
func watchRSS(cmd *exec.Cmd, report func(mb float64)) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for cmd.Process == nil {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		root := cmd.Process.Pid
		best := 0.0
		for {
			if kb := treeHWM(root); float64(kb)/1024 > best {
				best = float64(kb) / 1024
			}
			select {
			case <-done:
				if best > 0 {
					report(best)
				}
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// helperNames are the processes counted as the network side besides the
// one started.
var helperNames = map[string]bool{"slirp4netns": true, "pasta": true, "passt": true, "pasta.avx2": true}

// treeHWM sums VmHWM (kB) of root and of its descendants named in
// helperNames.
func treeHWM(root int) int {
	total := hwm(root)
	children := map[int][]int{}
	names := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		name, ppid := statusOf(pid)
		names[pid] = name
		children[ppid] = append(children[ppid], pid)
	}
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			if helperNames[names[c]] {
				total += hwm(c)
			}
			walk(c)
		}
	}
	walk(root)
	return total
}

func statusOf(pid int) (name string, ppid int) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return "", -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, _ := strings.Cut(s.Text(), ":")
		switch k {
		case "Name":
			name = strings.TrimSpace(v)
		case "PPid":
			ppid, _ = strconv.Atoi(strings.TrimSpace(v))
			return name, ppid
		}
	}
	return name, -1
}

func hwm(pid int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb
		}
	}
	return 0
}
