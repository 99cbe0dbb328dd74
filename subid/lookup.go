package subid

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/moby/sys/user"
)

// Environment variables that override the system files when the
// corresponding Source field is empty.
const (
	// EnvUIDFile names the environment variable that overrides /etc/subuid.
	EnvUIDFile = "NSBOX_SUBUID_FILE"
	// EnvGIDFile names the environment variable that overrides /etc/subgid.
	EnvGIDFile = "NSBOX_SUBGID_FILE"
)

// getsubidsTimeout bounds a getsubids run, so that a hung NSS backend
// (a directory service that is down) falls back to the files instead of
// hanging sandbox startup. A variable so that tests can shorten it.
var getsubidsTimeout = 5 * time.Second

// nsswitchConf is the file whose "subid:" line tells whether subordinate
// ids come from an NSS module. A variable so that tests can replace it.
var nsswitchConf = "/etc/nsswitch.conf"

// CurrentOwner returns the Owner for the calling process's real uid, its
// Name looked up in /etc/passwd. A uid without a passwd entry (or a system
// without /etc/passwd) is not an error: Name stays "" and only numeric
// lines match. On another error the returned Owner still carries the UID.
func CurrentOwner() (Owner, error) {
	uid := os.Getuid()
	owner := Owner{UID: uint32(uid)}
	name, err := passwdName(uid)
	switch {
	case err == nil:
		owner.Name = name
	case errors.Is(err, user.ErrNoPasswdEntries), errors.Is(err, fs.ErrNotExist):
	default:
		return owner, fmt.Errorf("look up uid %d in %s: %w", uid, passwdFile, err)
	}
	return owner, nil
}

// passwdFile is the file CurrentOwner reads. A variable so that tests can
// replace it.
var passwdFile = "/etc/passwd"

// passwdName returns the name of the first entry for uid in passwdFile:
// user.LookupUid's answer, read through openPlain.
func passwdName(uid int) (string, error) {
	f, err := openPlain(passwdFile)
	if err != nil {
		return "", err
	}
	defer f.Close()
	users, err := user.ParsePasswdFilter(f, func(u user.User) bool { return u.Uid == uid })
	if err != nil {
		return "", err
	}
	if len(users) == 0 {
		return "", user.ErrNoPasswdEntries
	}
	return users[0].Name, nil
}

// Source says where subordinate ids come from. The zero value reads the
// system files (or asks getsubids, see Lookup).
type Source struct {
	// UIDFile and GIDFile override the files. If empty, the environment
	// variables NSBOX_SUBUID_FILE and NSBOX_SUBGID_FILE are used, else
	// /etc/subuid and /etc/subgid.
	UIDFile, GIDFile string
	// Getsubids is the path of shadow's getsubids program. If empty,
	// "getsubids" is looked up in PATH, when Lookup decides to run it.
	Getsubids string
}

// Path returns the file Lookup reads for kind, after applying the Source
// fields and the environment, so that messages can name it.
func (s Source) Path(kind Kind) string {
	p, _ := s.path(kind)
	return p
}

// path returns the file for kind and whether it was overridden.
func (s Source) path(kind Kind) (string, bool) {
	field, env, def := s.UIDFile, EnvUIDFile, "/etc/subuid"
	if kind == GIDs {
		field, env, def = s.GIDFile, EnvGIDFile, "/etc/subgid"
	}
	if field != "" {
		return field, true
	}
	if p := os.Getenv(env); p != "" {
		return p, true
	}
	return def, false
}

// Lookup returns owner's ranges of the given kind, in file order. No entry
// (and no file) is not an error: it returns nil, nil.
//
// If s.Getsubids is set, Lookup asks that program first. Otherwise it runs
// getsubids from PATH only when the file for kind was not overridden and
// /etc/nsswitch.conf routes the subid database to a service other than
// "files": without that, getsubids would only read the same files, and
// running it costs startup time. getsubids needs a login name, so an owner
// without Name skips it. If getsubids fails, is missing, or prints nothing
// or something malformed, Lookup silently reads the file instead.
func (s Source) Lookup(owner Owner, kind Kind) ([]Range, error) {
	path, overridden := s.path(kind)
	// getsubids takes the owner as argv[1] and has no "--": a name that
	// looks like an option cannot be passed safely.
	if owner.Name != "" && owner.Name[0] != '-' {
		prog := s.Getsubids
		if prog == "" && !overridden && nssSubid() {
			prog = "getsubids"
		}
		if prog != "" {
			if ranges, ok := getsubids(prog, owner.Name, kind); ok {
				return ranges, nil
			}
		}
	}
	f, err := openFile(path)
	if f == nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f, path, owner)
}

// RoutedToNSS reports whether /etc/nsswitch.conf routes the subid
// database to a service other than "files": only then does Lookup, for
// a Source without Getsubids, run getsubids (found in PATH). The replayed
// start checks getsubids only then (cmd/nsbox/replay.go).
func RoutedToNSS() bool { return nssSubid() }

// nssSubid reports whether nsswitch.conf has a "subid:" line whose first
// service is not "files". shadow's libsubid reads that line the same way.
func nssSubid() bool {
	f, err := openPlain(nsswitchConf)
	if err != nil {
		return false
	}
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(data)) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		db, services, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(db), "subid") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimSpace(services), " ")
		first, _, _ = strings.Cut(first, "\t")
		return first != "" && first != "files"
	}
	return false
}

// getsubids runs prog ("getsubids NAME" or "getsubids -g NAME") and parses
// its output. ok is false when it cannot be used: the program failed, or
// printed no ranges, or a malformed or invalid line.
func getsubids(prog, name string, kind Kind) (ranges []Range, ok bool) {
	args := []string{name}
	if kind == GIDs {
		args = []string{"-g", name}
	}
	ctx, cancel := context.WithTimeout(context.Background(), getsubidsTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.WaitDelay = 100 * time.Millisecond
	out, err := cmd.Output()
	if err != nil {
		return nil, false
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		rg, ok := parseGetsubidsLine(line)
		if !ok {
			return nil, false
		}
		ranges = append(ranges, rg)
	}
	if sc.Err() != nil || len(ranges) == 0 {
		return nil, false
	}
	return ranges, true
}

// parseGetsubidsLine parses "INDEX: OWNER START COUNT".
func parseGetsubidsLine(line string) (Range, bool) {
	f := strings.Fields(line)
	if len(f) != 4 {
		return Range{}, false
	}
	index, ok := strings.CutSuffix(f[0], ":")
	if !ok || !allDigits(index) {
		return Range{}, false
	}
	rg, what, _ := parseRange(f[2], f[3])
	return rg, what == ""
}
