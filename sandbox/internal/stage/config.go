package stage

/*
#include "stage.h"
*/
import "C"

import (
	"encoding/hex"
	"path/filepath"
	"strconv"

	"github.com/nsbox/nsbox/mapping"
)

// ExtraFD is the stage's descriptor of the command's first extra file;
// Spec.Enter's namespaces follow the extra files.
const ExtraFD = C.NSBOX_STAGE_FD + 1

// ConfigVersion is the CONFIG protocol's version (stage.h), sent as the
// first record: a stage of another build refuses the message.
const ConfigVersion = C.NSBOX_CONFIG_VERSION

// Config is everything the C stage needs, already decided: plain data
// that package sandbox fills from a Spec (its stageconfig.go). It is sent
// as one CONFIG message of "key=value\0" records, "v=ConfigVersion"
// first, which config.c decodes in one pass through the key tables of the
// stage's C files (config.h); repeated keys (arg, env) keep their order.
// The decoder refuses what it does not know: a key added here needs its
// table line there, and configcheck_test.go proves both agree. Zero
// values send nothing, except where a field says otherwise.
type Config struct {
	Unshare    int  // CLONE_NEW* flags of the namespaces to create (always sent)
	SetupRoot  bool // inner 0 is mapped: do setup as root
	Setgroups  bool // the plan allows setgroups(2)
	MountProc  bool // mount a new /proc
	LoopbackUp bool // bring lo up in the new network namespace
	NoNewPrivs bool
	ExecWait   bool // PID 1 waits for EXEC_GO before exec (Spec.BeforeExec)
	// CommandFirst (with ExecWait): PID 1 forks the command's process
	// first, which enters its namespaces and waits; PID 1 sends
	// COMMAND_READY, then waits for EXEC_GO (Spec.CommandCreated).
	CommandFirst bool
	// PID1Command: PID 1 execs the command itself (Spec.CommandIsPID1);
	// the socket's EOF, not EXEC_OK, then tells the launcher it ran.
	PID1Command bool
	TTY         int // the command's controlling terminal fd, -1 for none (always sent)
	ExtraFDs    int // extra files: at fds 4… in the stage, 3… in the command
	UID, GID    uint32
	Hostname    string
	Cwd         string
	Args        []string
	Argv0       string // "": Args[0]
	Env         []string

	// NewRoot builds a fresh root from Ops; the fields up to Ops are sent
	// only with it.
	NewRoot bool
	// OwnerUID/GID are the inner ids the caller's own host ids map to (-1
	// when not mapped): what setup creates on host filesystems gets them.
	OwnerUID, OwnerGID int64
	RootMapped         bool   // inner 0 is mapped, so devpts can be mounted
	CwdTry             string // where to start when Cwd is "": the launcher's directory if inside
	Ops                []Op

	// Nest, if not nil, asks for a nested user namespace for the command.
	Nest *Nest

	// Enter*: existing namespaces (Spec.Enter), as the stage's fds (-1
	// or 0: none); with EnterUserns, NestIdentity nests with the
	// identity over its ids and KeepUID/KeepGID keep the ids the process
	// has there (enter.c).
	EnterUserns, EnterUserns2, EnterPidns int
	NestIdentity, KeepUID, KeepGID        bool
	// MapsLater: the maps are written after PID1 (Spec.WriteMaps); PID
	// 1 waits for MAPS_DONE, then reads them as for EnterUserns.
	MapsLater bool

	JoinPID    int    // join the sandbox whose PID 1 this is (join.c)
	JoinStart  uint64 // and whose start time this is
	JoinNested bool   // that sandbox's command has a nested user namespace
	JoinPID1   bool   // that sandbox's command is its PID 1 (PID1Command)
	// Live, if not nil, acts on the joined sandbox instead of running
	// a command (join.c's live operations).
	Live *Live

	PTY              bool // PID 1 allocates the command's pseudo-terminal (pty.c)
	PTYRows, PTYCols int  // and its window size
	// PTYKeep: bit N set, fd N (0-2) stays the stage's file instead of
	// becoming the pty's slave (pty.c).
	PTYKeep int

	// Security and Network are records sent last, in order: key, value.
	Security [][2]string
	Network  [][2]string
}

// Live operations on a running sandbox (Config.Live.Op).
const (
	LiveMount  = 1 // bind the host path Src at Dest in the command's view
	LiveUmount = 2 // remove what LiveMount put at Dest
	LiveSocket = 3 // a socket(Family, Type) of the sandbox's network namespace
)

// Live is a live operation: with JoinPID, the stage joins the sandbox as
// far as the operation needs, does it, answers LIVE_DONE and exits.
type Live struct {
	Op           int
	Src, Dest    string
	ReadOnly     bool
	Mkdir        bool
	Family, Type int
}

// Nest is the nested user namespace of the command (package sandbox's
// nested.go): its maps, relative to the stage's user namespace, and the
// ids the stage's namespace is entered with.
type Nest struct {
	UIDs, GIDs []mapping.Extent
	UID, GID   uint32
}

// Op is one mount op of a new root, as mounts.c applies it.
type Op struct {
	Type         string // mounts.c's name: "bind", "tmpfs", "file", …
	Source       string
	Destination  string // cleaned when sent
	ReadOnly     bool
	Devices      bool
	Optional     bool
	Owned        bool
	NonRecursive bool
	Tun          bool
	Mode         uint32 // the unix mode bits
	ModeSet      bool   // Mode is meant even when 0
	Size         int64  // sent when > 0
	Data         []byte // sent, hex-encoded, for "file" only
	Lower        []string
	Upper, Work  string
	What         string // how errors name the op
}

// Encode renders the records.
func (c *Config) Encode() []byte {
	size := 256 + len(c.Hostname) + len(c.Cwd)
	for _, m := range c.Ops {
		size += 128 + len(m.Source) + len(m.Destination) + 2*len(m.Data)
	}
	for _, a := range c.Args {
		size += len(a) + 5
	}
	size += len(c.Argv0)
	for _, e := range c.Env {
		size += len(e) + 5
	}
	b := make([]byte, 0, size)
	add := func(k, v string) { b = AppendRecord(b, k, v) }
	flag := func(k string, on bool) {
		if on {
			add(k, "1")
		}
	}
	add("v", strconv.Itoa(ConfigVersion))
	add("unshare", strconv.Itoa(c.Unshare))
	flag("setup-root", c.SetupRoot)
	flag("setgroups", c.Setgroups)
	flag("proc", c.MountProc)
	flag("lo", c.LoopbackUp)
	flag("no-new-privs", c.NoNewPrivs)
	flag("exec-wait", c.ExecWait)
	flag("command-first", c.CommandFirst)
	flag("pid1-command", c.PID1Command)
	add("tty", strconv.Itoa(c.TTY))
	if c.ExtraFDs > 0 {
		add("extra-fds", strconv.Itoa(c.ExtraFDs))
	}
	add("uid", strconv.FormatUint(uint64(c.UID), 10))
	add("gid", strconv.FormatUint(uint64(c.GID), 10))
	if c.Hostname != "" {
		add("hostname", c.Hostname)
	}
	if c.Cwd != "" {
		add("cwd", c.Cwd)
	}
	for _, a := range c.Args {
		add("arg", a)
	}
	if c.Argv0 != "" {
		add("argv0", c.Argv0)
	}
	for _, e := range c.Env {
		add("env", e)
	}
	if c.NewRoot {
		add("owner-uid", strconv.FormatInt(c.OwnerUID, 10))
		add("owner-gid", strconv.FormatInt(c.OwnerGID, 10))
		flag("root-mapped", c.RootMapped)
		flag("new-root", true)
		if c.CwdTry != "" {
			add("cwd-try", c.CwdTry)
		}
		for i := range c.Ops {
			c.Ops[i].encode(add)
		}
	}
	if n := c.Nest; n != nil {
		add("nest-uid-map", mapping.Format(n.UIDs))
		add("nest-gid-map", mapping.Format(n.GIDs))
		add("nest-uid", strconv.FormatUint(uint64(n.UID), 10))
		add("nest-gid", strconv.FormatUint(uint64(n.GID), 10))
	}
	for _, e := range []struct {
		k  string
		fd int
	}{{"enter-userns", c.EnterUserns}, {"enter-userns2", c.EnterUserns2}, {"enter-pidns", c.EnterPidns}} {
		if e.fd > 0 {
			add(e.k, strconv.Itoa(e.fd))
		}
	}
	flag("nest-identity", c.NestIdentity)
	flag("keep-uid", c.KeepUID)
	flag("keep-gid", c.KeepGID)
	flag("maps-later", c.MapsLater)
	if c.JoinPID > 0 {
		add("join-pid", strconv.Itoa(c.JoinPID))
		add("join-start", strconv.FormatUint(c.JoinStart, 10))
		flag("join-nested", c.JoinNested)
		flag("join-pid1-command", c.JoinPID1)
		if l := c.Live; l != nil {
			add("live-op", strconv.Itoa(l.Op))
			if l.Src != "" {
				add("live-src", l.Src)
			}
			if l.Dest != "" {
				add("live-dest", l.Dest)
			}
			flag("live-ro", l.ReadOnly)
			flag("live-mkdir", l.Mkdir)
			if l.Family > 0 {
				add("live-family", strconv.Itoa(l.Family))
				add("live-type", strconv.Itoa(l.Type))
			}
		}
	}
	if c.PTY {
		add("pty", "1")
		add("pty-rows", strconv.Itoa(c.PTYRows))
		add("pty-cols", strconv.Itoa(c.PTYCols))
		if c.PTYKeep != 0 {
			add("pty-keep", strconv.Itoa(c.PTYKeep))
		}
	}
	for _, kv := range c.Security {
		add(kv[0], kv[1])
	}
	for _, kv := range c.Network {
		add(kv[0], kv[1])
	}
	return b
}

// AppendRecord appends the record "k=v\0" to b.
func AppendRecord(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, '=')
	b = append(b, v...)
	return append(b, 0)
}

// Flag bits of a "mount-flags" record; mounts.c reads the same values.
const (
	mountFlagReadOnly = 1 << iota
	mountFlagDevices
	mountFlagOptional
	mountFlagOwned
	mountFlagNonRecursive
	mountFlagTun
	mountFlagModeSet
)

// encode appends the op's records: "mount=TYPE" opens it, the keys after
// it (until the next "mount") fill it in.
func (m *Op) encode(add func(k, v string)) {
	add("mount", m.Type)
	if m.Source != "" {
		add("mount-src", m.Source)
	}
	add("mount-dst", filepath.Clean(m.Destination))
	fl := 0
	for _, b := range []struct {
		on  bool
		bit int
	}{
		{m.ReadOnly, mountFlagReadOnly},
		{m.Devices, mountFlagDevices},
		{m.Optional, mountFlagOptional},
		{m.Owned, mountFlagOwned},
		{m.NonRecursive, mountFlagNonRecursive},
		{m.Tun, mountFlagTun},
		{m.ModeSet, mountFlagModeSet},
	} {
		if b.on {
			fl |= b.bit
		}
	}
	add("mount-flags", strconv.Itoa(fl))
	add("mount-mode", strconv.FormatUint(uint64(m.Mode), 10))
	if m.Size > 0 {
		add("mount-size", strconv.FormatInt(m.Size, 10))
	}
	if m.Type == "file" {
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
	add("mount-what", m.What)
}
