package stage

/*
#include "protocol.h"
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
// Every key is a macro of protocol.h, read here through cgo (C.KEY_*), so
// the two sides cannot spell one differently; the decoder refuses what it
// does not know, and configcheck_test.go proves both halves agree on the
// values. Zero values send nothing, except where a field says otherwise.
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
	Groups      []uint32 // supplementary groups, with Setgroups

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

	Security Security // security.c's settings (always sent: "caps" at least)
	// NetWait: PID 1 waits for NET_READY (an external helper's device,
	// EncodeTAP); TAP: PID 1 creates this device and sends its fd.
	NetWait bool
	TAP     *TAP
}

// Live operations on a running sandbox (Config.Live.Op).
const (
	LiveMount  = 1 // bind the host path Src at Dest in the command's view
	LiveUmount = 2 // remove what LiveMount put at Dest
	LiveSocket = 3 // a socket(Family, Type) of the sandbox's network namespace
	LiveSignal = 4 // Signal to every process of the sandbox's PID namespace but its PID 1
)

// Live is a live operation: with JoinPID, the stage joins the sandbox as
// far as the operation needs, does it, answers LIVE_DONE and exits.
type Live struct {
	Op           int
	Src, Dest    string
	Anchor       string // an empty host file or directory the mount ops hold it by (live.c)
	ReadOnly     bool
	Mkdir        bool
	Family, Type int
	Signal       int
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
	add := func(k, v string) { b = appendRecord(b, k, v) }
	add(C.KEY_VERSION, strconv.Itoa(ConfigVersion))
	add(C.KEY_UNSHARE, strconv.Itoa(c.Unshare))
	flag(add, C.KEY_SETUP_ROOT, c.SetupRoot)
	flag(add, C.KEY_SETGROUPS, c.Setgroups)
	flag(add, C.KEY_PROC, c.MountProc)
	flag(add, C.KEY_LO, c.LoopbackUp)
	flag(add, C.KEY_NO_NEW_PRIVS, c.NoNewPrivs)
	flag(add, C.KEY_EXEC_WAIT, c.ExecWait)
	flag(add, C.KEY_COMMAND_FIRST, c.CommandFirst)
	flag(add, C.KEY_PID1_COMMAND, c.PID1Command)
	add(C.KEY_TTY, strconv.Itoa(c.TTY))
	if c.ExtraFDs > 0 {
		add(C.KEY_EXTRA_FDS, strconv.Itoa(c.ExtraFDs))
	}
	add(C.KEY_UID, strconv.FormatUint(uint64(c.UID), 10))
	add(C.KEY_GID, strconv.FormatUint(uint64(c.GID), 10))
	if c.Hostname != "" {
		add(C.KEY_HOSTNAME, c.Hostname)
	}
	if c.Cwd != "" {
		add(C.KEY_CWD, c.Cwd)
	}
	for _, a := range c.Args {
		add(C.KEY_ARG, a)
	}
	if c.Argv0 != "" {
		add(C.KEY_ARGV0, c.Argv0)
	}
	for _, e := range c.Env {
		add(C.KEY_ENV, e)
	}
	if c.Setgroups {
		for _, g := range c.Groups {
			add(C.KEY_GROUP, strconv.FormatUint(uint64(g), 10))
		}
	}
	if c.NewRoot {
		add(C.KEY_OWNER_UID, strconv.FormatInt(c.OwnerUID, 10))
		add(C.KEY_OWNER_GID, strconv.FormatInt(c.OwnerGID, 10))
		flag(add, C.KEY_ROOT_MAPPED, c.RootMapped)
		flag(add, C.KEY_NEW_ROOT, true)
		if c.CwdTry != "" {
			add(C.KEY_CWD_TRY, c.CwdTry)
		}
		for i := range c.Ops {
			c.Ops[i].encode(add)
		}
	}
	if n := c.Nest; n != nil {
		add(C.KEY_NEST_UID_MAP, mapping.Format(n.UIDs))
		add(C.KEY_NEST_GID_MAP, mapping.Format(n.GIDs))
		add(C.KEY_NEST_UID, strconv.FormatUint(uint64(n.UID), 10))
		add(C.KEY_NEST_GID, strconv.FormatUint(uint64(n.GID), 10))
	}
	for _, e := range []struct {
		k  string
		fd int
	}{{C.KEY_ENTER_USERNS, c.EnterUserns}, {C.KEY_ENTER_USERNS2, c.EnterUserns2}, {C.KEY_ENTER_PIDNS, c.EnterPidns}} {
		if e.fd > 0 {
			add(e.k, strconv.Itoa(e.fd))
		}
	}
	flag(add, C.KEY_NEST_IDENTITY, c.NestIdentity)
	flag(add, C.KEY_KEEP_UID, c.KeepUID)
	flag(add, C.KEY_KEEP_GID, c.KeepGID)
	flag(add, C.KEY_MAPS_LATER, c.MapsLater)
	if c.JoinPID > 0 {
		add(C.KEY_JOIN_PID, strconv.Itoa(c.JoinPID))
		add(C.KEY_JOIN_START, strconv.FormatUint(c.JoinStart, 10))
		flag(add, C.KEY_JOIN_NESTED, c.JoinNested)
		flag(add, C.KEY_JOIN_PID1_COMMAND, c.JoinPID1)
		if l := c.Live; l != nil {
			add(C.KEY_LIVE_OP, strconv.Itoa(l.Op))
			if l.Src != "" {
				add(C.KEY_LIVE_SRC, l.Src)
			}
			if l.Dest != "" {
				add(C.KEY_LIVE_DEST, l.Dest)
			}
			if l.Anchor != "" {
				add(C.KEY_LIVE_ANCHOR, l.Anchor)
			}
			flag(add, C.KEY_LIVE_RO, l.ReadOnly)
			flag(add, C.KEY_LIVE_MKDIR, l.Mkdir)
			if l.Family > 0 {
				add(C.KEY_LIVE_FAMILY, strconv.Itoa(l.Family))
				add(C.KEY_LIVE_TYPE, strconv.Itoa(l.Type))
			}
			if l.Signal > 0 {
				add(C.KEY_LIVE_SIGNAL, strconv.Itoa(l.Signal))
			}
		}
	}
	if c.PTY {
		add(C.KEY_PTY, "1")
		add(C.KEY_PTY_ROWS, strconv.Itoa(c.PTYRows))
		add(C.KEY_PTY_COLS, strconv.Itoa(c.PTYCols))
		if c.PTYKeep != 0 {
			add(C.KEY_PTY_KEEP, strconv.Itoa(c.PTYKeep))
		}
	}
	c.Security.encode(add)
	flag(add, C.KEY_NET_WAIT, c.NetWait)
	c.TAP.encode(add)
	return b
}

// appendRecord appends the record "k=v\0" to b.
func appendRecord(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, '=')
	b = append(b, v...)
	return append(b, 0)
}

// opFlags are the MOUNT_* bits of a "mount-flags" record (protocol.h),
// each with the Op field that sets it.
var opFlags = []struct {
	bit int
	on  func(*Op) bool
}{
	{C.MOUNT_READONLY, func(m *Op) bool { return m.ReadOnly }},
	{C.MOUNT_DEVICES, func(m *Op) bool { return m.Devices }},
	{C.MOUNT_OPTIONAL, func(m *Op) bool { return m.Optional }},
	{C.MOUNT_OWNED, func(m *Op) bool { return m.Owned }},
	{C.MOUNT_NONRECURSIVE, func(m *Op) bool { return m.NonRecursive }},
	{C.MOUNT_TUN, func(m *Op) bool { return m.Tun }},
	{C.MOUNT_MODE_SET, func(m *Op) bool { return m.ModeSet }},
}

// encode appends the op's records: "mount=TYPE" opens it, the keys after
// it (until the next "mount") fill it in.
func (m *Op) encode(add func(k, v string)) {
	add(C.KEY_MOUNT, m.Type)
	if m.Source != "" {
		add(C.KEY_MOUNT_SRC, m.Source)
	}
	add(C.KEY_MOUNT_DST, filepath.Clean(m.Destination))
	fl := 0
	for _, f := range opFlags {
		if f.on(m) {
			fl |= f.bit
		}
	}
	add(C.KEY_MOUNT_FLAGS, strconv.Itoa(fl))
	add(C.KEY_MOUNT_MODE, strconv.FormatUint(uint64(m.Mode), 10))
	if m.Size > 0 {
		add(C.KEY_MOUNT_SIZE, strconv.FormatInt(m.Size, 10))
	}
	if m.Type == "file" {
		add(C.KEY_MOUNT_DATA, hex.EncodeToString(m.Data))
	}
	for _, l := range m.Lower {
		add(C.KEY_MOUNT_LOWER, l)
	}
	if m.Upper != "" {
		add(C.KEY_MOUNT_UPPER, m.Upper)
	}
	if m.Work != "" {
		add(C.KEY_MOUNT_WORK, m.Work)
	}
	add(C.KEY_MOUNT_WHAT, m.What)
}
