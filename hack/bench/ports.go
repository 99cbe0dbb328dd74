package main

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
)

// portAdd: nsbox port add on a running sandbox, as a user of -p at run
// time waits for it (issue 22.3: median under 5 ms). Each sample adds a
// free host port and, untimed, removes it again.
func portAdd(cfg *config) *comparison {
	c := &comparison{
		Title: "`nsbox port add` on a running sandbox",
		Unit:  "ms",
		Contenders: []*contender{
			{Name: "nsbox port add (--net user)"},
			{Name: "nsbox port add (--net slirp4netns)"},
		},
		Note: "Each sample forwards a free host port to port 80 of a running detached sandbox; the port is removed between samples (not timed).",
	}
	for i, mode := range []string{"user", "slirp4netns"} {
		k := c.Contenders[i]
		name := "bench-port-" + mode
		if out, err := exec.Command(cfg.nsbox, "run", "--detach", "--name", name, "--net", mode, "--", "sleep", "3600").CombinedOutput(); err != nil {
			k.Missing = fmt.Sprintf("nsbox run --net %s: %v: %s", mode, err, strings.TrimSpace(string(out)))
			continue
		}
		defer exec.Command(cfg.nsbox, "kill", name).Run()
		k.Argv = []string{cfg.nsbox, "port", "add", name, ""}
	}
	alternate(cfg.rounds, c.Contenders, func(k *contender) (float64, error) {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		spec := fmt.Sprintf("%d:80", l.Addr().(*net.TCPAddr).Port)
		l.Close()
		argv := append(append([]string{}, k.Argv[:4]...), spec)
		ms, err := wallTime(argv)
		exec.Command(cfg.nsbox, "port", "rm", argv[3], spec).Run()
		return ms, err
	})
	return c
}
