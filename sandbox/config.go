package sandbox

/*
#include "stage.h"
*/
import "C"

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"

	"github.com/nsbox/nsbox/mapping"
)

// configVersion is the CONFIG protocol's version (stage.h), sent as the
// first record: a stage of another build refuses the message.
const configVersion = C.NSBOX_CONFIG_VERSION

// stageConfig is everything the C stage needs, already decided. It is sent
// as one CONFIG message of "key=value\0" records, "v=configVersion"
// first, which config.c decodes in one pass through the key tables of the
// stage's C files (config.h); repeated keys (arg, env) keep their order.
// The decoder refuses what it does not know: a key added here needs its
// table line there, and configcheck_test.go proves both agree.
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
	argv0        string // "": args[0]
	execWait     bool   // PID 1 waits for EXEC_GO (Spec.BeforeExec)
	// mounts, when newRoot is set, build a fresh root (mount.go).
	newRoot bool
	mounts  []Mount
	// ownerUID/GID are the inner ids the caller's own host ids map to (-1
	// when not mapped): what setup creates on host filesystems gets them.
	ownerUID, ownerGID int64
	// rootMapped: inner 0 is mapped, so devpts can be mounted.
	rootMapped bool
	// cwdTry is where the command starts when no Cwd is given and the
	// root is new: the launcher's directory if it is inside, else /.
	cwdTry string
	// nest: the plan applied to the stage's user namespace, and the maps
	// of the command's nested one (nested.go).
	nest      nesting
	joinPid   int    // nsbox exec: enter the sandbox whose PID 1 this is (join.c)
	joinStart uint64 // and whose start time this is
	// joinNested: that sandbox's command has a nested user namespace
	// (nested.go), which a joined command enters too.
	joinNested bool
	pty        bool // allocate the command's pseudo-terminal (pty.c)
	ptyRows    int  // and its window size
	ptyCols    int
	extraFDs   int         // Process.ExtraFiles: at fds 4… in the stage, 3… in the command
	security   [][2]string // security.go, limits.go: key, value
	network    *Network
}

func newStageConfig(s *Spec, ttyFD int) stageConfig {
	ns := s.Namespaces
	nest := planNesting(s)
	m := nest.plan
	c := stageConfig{
		nest:         nest,
		unshareFlags: ns.cloneFlags(),
		setupRoot:    m.MapsInnerUID(0) && m.MapsInnerGID(0),
		setgroups:    m.SetgroupsAllowed(),
		mountProc:    ns.Mount && ns.PID,
		loUp:         ns.Net,
		noNewPrivs:   s.Process.NoNewPrivs,
		ttyFD:        ttyFD,
		extraFDs:     len(s.Process.ExtraFiles),
		uid:          s.Process.UID,
		gid:          s.Process.GID,
		hostname:     s.Hostname,
		cwd:          s.Process.Cwd,
		args:         s.Process.Args,
		argv0:        s.Process.Argv0,
		execWait:     s.BeforeExec != nil,
		env:          s.Process.Env,
		newRoot:      s.Mounts != nil && ns.Mount,
		mounts:       s.Mounts,
		ownerUID:     innerOf(m.UIDs, m.HostUID),
		ownerGID:     innerOf(m.GIDs, m.HostGID),
		rootMapped:   m.MapsInnerUID(0) && m.MapsInnerGID(0),
		security:     append(s.Security.records(s.Process.UID), s.Limits.records()...),
		network:      s.Network,
	}
	if c.newRoot && c.cwd == "" {
		c.cwdTry, _ = os.Getwd()
	}
	return c
}

// innerOf is the inner id that host id maps to, or -1.
func innerOf(ext []mapping.Extent, host uint32) int64 {
	for _, e := range ext {
		if host >= e.Outer && host-e.Outer < e.Count {
			return int64(e.Inner) + int64(host-e.Outer)
		}
	}
	return -1
}

// withTerminal asks PID 1 for a pseudo-terminal of size ws.
func (c stageConfig) withTerminal(rows, cols int) stageConfig {
	c.pty, c.ptyRows, c.ptyCols = true, rows, cols
	return c
}

// encode renders the records.
func (c stageConfig) encode() []byte {
	size := 256 + len(c.hostname) + len(c.cwd)
	for _, m := range c.mounts {
		size += 128 + len(m.Source) + len(m.Destination) + 2*len(m.Data)
	}
	for _, a := range c.args {
		size += len(a) + 5
	}
	size += len(c.argv0)
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
	add("v", strconv.Itoa(configVersion))
	add("unshare", strconv.Itoa(c.unshareFlags))
	flag("setup-root", c.setupRoot)
	flag("setgroups", c.setgroups)
	flag("proc", c.mountProc)
	flag("lo", c.loUp)
	flag("no-new-privs", c.noNewPrivs)
	flag("exec-wait", c.execWait)
	add("tty", strconv.Itoa(c.ttyFD))
	if c.extraFDs > 0 {
		add("extra-fds", strconv.Itoa(c.extraFDs))
	}
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
	if c.argv0 != "" {
		add("argv0", c.argv0)
	}
	for _, e := range c.env {
		add("env", e)
	}
	if c.newRoot {
		add("owner-uid", strconv.FormatInt(c.ownerUID, 10))
		add("owner-gid", strconv.FormatInt(c.ownerGID, 10))
		flag("root-mapped", c.rootMapped)
		flag("new-root", true)
		if c.cwdTry != "" {
			add("cwd-try", c.cwdTry)
		}
		for i := range c.mounts {
			c.mounts[i].encode(add)
		}
	}
	if c.nest.nested {
		add("nest-uid-map", mapping.Format(c.nest.uids))
		add("nest-gid-map", mapping.Format(c.nest.gids))
		add("nest-uid", strconv.FormatUint(uint64(c.nest.outerUID), 10))
		add("nest-gid", strconv.FormatUint(uint64(c.nest.outerGID), 10))
	}
	if c.joinPid > 0 {
		add("join-pid", strconv.Itoa(c.joinPid))
		add("join-start", strconv.FormatUint(c.joinStart, 10))
		flag("join-nested", c.joinNested)
	}
	if c.pty {
		add("pty", "1")
		add("pty-rows", strconv.Itoa(c.ptyRows))
		add("pty-cols", strconv.Itoa(c.ptyCols))
	}
	for _, kv := range c.security {
		add(kv[0], kv[1])
	}
	c.network.records(add)
	return b
}

// Flag bits of a "mount-flags" record; mounts.c reads the same values.
const (
	mountFlagReadOnly = 1 << iota
	mountFlagDevices
	mountFlagOptional
	mountFlagOwned
	mountFlagNonRecursive
	mountFlagTun
)

// encode appends the op's records: "mount=TYPE" opens it, the keys after
// it (until the next "mount") fill it in.
func (m *Mount) encode(add func(k, v string)) {
	add("mount", string(m.Type))
	if m.Source != "" {
		add("mount-src", m.Source)
	}
	add("mount-dst", filepath.Clean(m.Destination))
	fl := 0
	if m.ReadOnly {
		fl |= mountFlagReadOnly
	}
	if m.Devices {
		fl |= mountFlagDevices
	}
	if m.Optional {
		fl |= mountFlagOptional
	}
	if m.Owned {
		fl |= mountFlagOwned
	}
	if m.NonRecursive {
		fl |= mountFlagNonRecursive
	}
	if m.Tun {
		fl |= mountFlagTun
	}
	add("mount-flags", strconv.Itoa(fl))
	add("mount-mode", strconv.FormatUint(uint64(unixMode(m.Mode)), 10))
	if m.Size > 0 {
		add("mount-size", strconv.FormatInt(m.Size, 10))
	}
	if m.Type == MountFile {
		add("mount-data", hex.EncodeToString(m.Data))
	}
	for _, l := range m.Lower {
		add("mount-lower", l)
	}
	if m.Upper != "" {
		add("mount-upper", m.Upper)
	}
	if m.Work != "" {
		add("mount-work", m.Work)
	}
	add("mount-what", m.what())
}
