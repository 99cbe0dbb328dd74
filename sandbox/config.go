package sandbox

import "strconv"

// stageConfig is everything the C stage needs, already decided. It is sent
// as one CONFIG message of "key=value\0" records, which stage.c reads in one
// pass; repeated keys (arg, env) keep their order.
type stageConfig struct {
	unshareFlags int
	setupRoot    bool // inner 0 is mapped: do setup as root
	setgroups    bool
	mountProc    bool
	loUp         bool
	noNewPrivs   bool
	ttyFD        int // -1: no terminal handed to the command
	uid, gid     uint32
	hostname     string
	cwd          string
	args, env    []string
	network      *Network
}

func newStageConfig(s *Spec, ttyFD int) stageConfig {
	ns := s.Namespaces
	return stageConfig{
		unshareFlags: ns.cloneFlags(),
		setupRoot:    s.Mapping.MapsInnerUID(0) && s.Mapping.MapsInnerGID(0),
		setgroups:    s.Mapping.SetgroupsAllowed(),
		mountProc:    ns.Mount && ns.PID,
		loUp:         ns.Net,
		noNewPrivs:   s.Process.NoNewPrivs,
		ttyFD:        ttyFD,
		uid:          s.Process.UID,
		gid:          s.Process.GID,
		hostname:     s.Hostname,
		cwd:          s.Process.Cwd,
		args:         s.Process.Args,
		env:          s.Process.Env,
		network:      s.Network,
	}
}

// encode renders the records.
func (c stageConfig) encode() []byte {
	size := 256 + len(c.hostname) + len(c.cwd)
	for _, a := range c.args {
		size += len(a) + 5
	}
	for _, e := range c.env {
		size += len(e) + 5
	}
	b := make([]byte, 0, size)
	add := func(k, v string) {
		b = append(b, k...)
		b = append(b, '=')
		b = append(b, v...)
		b = append(b, 0)
	}
	flag := func(k string, on bool) {
		if on {
			add(k, "1")
		}
	}
	add("unshare", strconv.Itoa(c.unshareFlags))
	flag("setup-root", c.setupRoot)
	flag("setgroups", c.setgroups)
	flag("proc", c.mountProc)
	flag("lo", c.loUp)
	flag("no-new-privs", c.noNewPrivs)
	add("tty", strconv.Itoa(c.ttyFD))
	add("uid", strconv.FormatUint(uint64(c.uid), 10))
	add("gid", strconv.FormatUint(uint64(c.gid), 10))
	if c.hostname != "" {
		add("hostname", c.hostname)
	}
	if c.cwd != "" {
		add("cwd", c.cwd)
	}
	for _, a := range c.args {
		add("arg", a)
	}
	for _, e := range c.env {
		add("env", e)
	}
	c.network.records(add)
	return b
}
