package replay

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nsbox/nsbox/mapping"
	"golang.org/x/sys/unix"
)

// Magic starts every plan file; it changes whenever the format does
// (replay.c knows only this one).
const Magic = "NSBOXRP1"

// The sections of a plan file, in the order Encode writes them: a tag
// byte, the length as 4 bytes little-endian, the bytes. replay.c reads
// the same tags.
const (
	tagArgv     = 'A' // /proc/self/cmdline as read
	tagEnv      = 'E' // the environment, each "K=V" and a NUL
	tagCreds    = 'I' // Creds()
	tagCwd      = 'W' // the working directory's path
	tagCheck    = 'C' // one Check: its kind, path, NUL, wanted answer
	tagConfig   = 'K' // the CONFIG payload
	tagUIDMap   = 'U' // how the uid map is written (encodeStep)
	tagGIDMap   = 'G' // the gid map
	tagRecord   = 'R' // the state record, with holes (state.Template)
	tagStateDir = 'D' // the state directory the entry goes in
	tagNotice   = 'N' // what the launcher printed on stderr before the start
	tagName     = 'M' // the name the sandbox was given (--name); none: a random one
	tagSweep    = 'T' // the sweep's stamp, a NUL, the nanoseconds between sweeps (decimal)
	tagMAC      = 'H' // HMAC-SHA256 of everything before this section
)

// Plan is one invocation's plan and what it was derived from.
type Plan struct {
	// Argv is the command line as /proc/self/cmdline holds it, and Env
	// the environment, each entry followed by a NUL, in order.
	Argv, Env []byte
	// Creds are the process's ids, groups and umask (Creds).
	Creds string
	// Cwd is the working directory.
	Cwd string
	// Checks are the files and directories the plan depends on, with
	// what each looked like when the plan was made.
	Checks []Check
	// Config is what the stage was sent; UIDMap and GIDMap how the maps
	// were written.
	Config         []byte
	UIDMap, GIDMap mapping.Step
	// Record is the state record with holes; StateDir where it goes.
	Record   []byte
	StateDir string
	// Notice is what the launcher printed on stderr before the start.
	Notice string
	// Name is the sandbox's name when the command line gave one
	// (--name): replay.c reserves the state entry under it and, as the
	// Go launcher, fails the start when it cannot record it. "" means a
	// random name, as state.RandomName makes.
	Name string
	// SweepStamp is the file whose mtime says when the state directory
	// was last swept for stale entries, and SweepEvery how often a sweep
	// is due (state.MaybeClean). A replay finds the stamp older than
	// that and leaves the start to the Go launcher, which sweeps: a
	// machine that only ever replays does not pile up the entries of
	// launchers that were killed. "" means no sweep is asked for.
	SweepStamp string
	SweepEvery time.Duration
}

// Check is one input of a plan: a path, how it is looked at, and what
// that gave when the plan was made (Look).
type Check struct {
	Kind byte
	Path string
	Want string
}

// The kinds of Check, each answered by Look and by replay.c alike.
const (
	Stat     = 'S' // stat(2): Identity
	Lstat    = 'L' // lstat(2): Identity
	Contents = 'R' // the first 4096 bytes of the file
	Link     = 'Y' // readlink(2)
	FSFlags  = 'F' // statfs(2): the filesystem's type and mount flags
)

// maxContents bounds a Contents check.
const maxContents = 4096

// Look returns what kind says of path now, in the form Check.Want holds:
// for Stat and Lstat the device, inode, mode (octal), owner, group,
// size, mtime and ctime (seconds.nanoseconds), for FSFlags "TYPE FLAGS";
// "E" and the errno when the call fails.
func Look(kind byte, path string) string {
	errno := func(err error) string {
		var e unix.Errno
		if errors.As(err, &e) {
			return fmt.Sprintf("E%d", int(e))
		}
		return "E0"
	}
	switch kind {
	case Stat, Lstat:
		var st unix.Stat_t
		var err error
		if kind == Stat {
			err = unix.Stat(path, &st)
		} else {
			err = unix.Lstat(path, &st)
		}
		if err != nil {
			return errno(err)
		}
		return Identity(&st)
	case Contents:
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
		if err != nil {
			return errno(err)
		}
		defer unix.Close(fd)
		b := make([]byte, maxContents)
		n := 0
		for n < len(b) {
			m, err := unix.Read(fd, b[n:])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return errno(err)
			}
			if m == 0 {
				break
			}
			n += m
		}
		return "=" + string(b[:n])
	case Link:
		b := make([]byte, 4096)
		n, err := unix.Readlink(path, b)
		if err != nil {
			return errno(err)
		}
		return "=" + string(b[:n])
	case FSFlags:
		var st unix.Statfs_t
		if err := unix.Statfs(path, &st); err != nil {
			return errno(err)
		}
		return fmt.Sprintf("%d %d", uint64(st.Type), uint64(st.Flags))
	}
	return "?"
}

// Identity is what a Stat or Lstat check compares: a file replaced,
// moved, rewritten, chmod'ed, chown'ed or given other extended attributes
// (file capabilities change the ctime) no longer matches. A directory is
// compared by device, inode, mode and owner only: its size and times
// change with every entry made in it (/tmp, the state directory), and
// the planner reads no directory's contents.
func Identity(st *unix.Stat_t) string {
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Sprintf("%d %d %o %d %d", uint64(st.Dev), uint64(st.Ino), st.Mode, st.Uid, st.Gid)
	}
	return fmt.Sprintf("%d %d %o %d %d %d %d.%09d %d.%09d", uint64(st.Dev), uint64(st.Ino), st.Mode, st.Uid, st.Gid,
		st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
}

// Creds returns the lines of /proc/self/status that name the process's
// ids, supplementary groups and umask ("Umask:", "Uid:", "Gid:",
// "Groups:"), in the file's order: what replay.c compares.
func Creds() (string, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "", err
	}
	var out strings.Builder
	for line := range strings.Lines(string(b)) {
		for _, k := range []string{"Umask:", "Uid:", "Gid:", "Groups:"} {
			if strings.HasPrefix(line, k) {
				out.WriteString(line)
			}
		}
	}
	return out.String(), nil
}

// Name is the file name of the plan for the invocation argv (as
// /proc/self/cmdline holds it) run in cwd.
func Name(argv []byte, cwd string) string {
	h := sha256.New()
	h.Write(argv)
	h.Write([]byte{0})
	h.Write([]byte(cwd))
	return hex.EncodeToString(h.Sum(nil)[:16]) + ".plan"
}

// Encode returns the plan file, authenticated with key.
func (p *Plan) Encode(key []byte) []byte {
	b := []byte(Magic)
	add := func(tag byte, data []byte) {
		b = append(b, tag)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
		b = append(b, data...)
	}
	add(tagArgv, p.Argv)
	add(tagEnv, p.Env)
	add(tagCreds, []byte(p.Creds))
	add(tagCwd, []byte(p.Cwd))
	for _, c := range p.Checks {
		add(tagCheck, append(append([]byte{c.Kind}, c.Path+"\x00"...), c.Want...))
	}
	add(tagConfig, p.Config)
	add(tagUIDMap, encodeStep(p.UIDMap))
	add(tagGIDMap, encodeStep(p.GIDMap))
	add(tagRecord, p.Record)
	add(tagStateDir, []byte(p.StateDir))
	if p.Notice != "" {
		add(tagNotice, []byte(p.Notice))
	}
	if p.Name != "" {
		add(tagName, []byte(p.Name))
	}
	if p.SweepStamp != "" {
		add(tagSweep, fmt.Appendf([]byte(p.SweepStamp+"\x00"), "%d", p.SweepEvery.Nanoseconds()))
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(b)
	add(tagMAC, mac.Sum(nil))
	return b
}

// encodeStep writes a map step as replay.c reads it: 'H', the helper and
// each argument, each followed by a NUL; or 'D' (a direct write) or 'S'
// ("deny" to setgroups, then the direct write) and the map's text.
func encodeStep(s mapping.Step) []byte {
	if s.Helper != "" {
		b := append([]byte{'H'}, s.Helper...)
		b = append(b, 0)
		for _, a := range s.Args {
			b = append(append(b, a...), 0)
		}
		return b
	}
	kind := byte('D')
	if s.DenySetgroups {
		kind = 'S'
	}
	return append([]byte{kind}, s.Text...)
}
