package replay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"
)

// The store lives in the state directory (cmd/nsbox/internal/state),
// which is private to its user and which nsbox run hides from every
// sandbox's view: the plans in StoreDir, the key that authenticates
// them in KeyFile beside it, so that a sandbox that is shown the plans
// (a --bind of StoreDir itself, which the hiding does not cover) still
// cannot forge one. replay.c opens both the same way: O_NOFOLLOW, then
// fstat, owned by the caller, no access for group or others.
const (
	StoreDir = ".replay"
	KeyFile  = ".replay-key"
	keySize  = 32
)

// Store is the plan store of one state directory.
type Store struct {
	dir string // the state directory
	key []byte
}

// OpenStore opens the store of the state directory dir, making its
// directory and key on first use.
func OpenStore(dir string) (*Store, error) {
	if err := unix.Mkdir(filepath.Join(dir, StoreDir), 0o700); err != nil && err != unix.EEXIST {
		return nil, fmt.Errorf("create the replay store: %w", err)
	}
	d, err := openPrivate(filepath.Join(dir, StoreDir), unix.O_RDONLY|unix.O_DIRECTORY, unix.S_IFDIR)
	if err != nil {
		return nil, err
	}
	unix.Close(d)
	key, err := readKey(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, err
	}
	return &Store{dir: dir, key: key}, nil
}

// readKey reads the key file at path, or makes it: 32 random bytes,
// mode 0600, created exclusively (two launchers racing: one makes it,
// both read it).
func readKey(path string) ([]byte, error) {
	for try := 0; try < 2; try++ {
		fd, err := openPrivate(path, unix.O_RDONLY, unix.S_IFREG)
		if err == nil {
			defer unix.Close(fd)
			key := make([]byte, keySize)
			if n, err := unix.Read(fd, key); err != nil || n != keySize {
				return nil, fmt.Errorf("read the replay key %s: not %d bytes; fix: remove it", path, keySize)
			}
			return key, nil
		}
		if err != errNotThere {
			return nil, err
		}
		// getrandom(2) rather than crypto/rand, whose package inits
		// (math/big's among them) every start would pay.
		key := make([]byte, keySize)
		if n, err := unix.Getrandom(key, 0); err != nil || n != keySize {
			return nil, fmt.Errorf("make the replay key: getrandom: %v", err)
		}
		tmp := fmt.Sprintf("%s.new-%d", path, unix.Getpid())
		w, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("make the replay key: %w", err)
		}
		_, werr := unix.Write(w, key)
		unix.Close(w)
		if werr == nil {
			// link(2) fails if another launcher made the key first: read
			// that one on the next round.
			werr = unix.Link(tmp, path)
		}
		unix.Unlink(tmp)
		if werr != nil && werr != unix.EEXIST {
			return nil, fmt.Errorf("make the replay key: %w", werr)
		}
	}
	return nil, fmt.Errorf("make the replay key %s: it keeps changing; fix: remove it", path)
}

var errNotThere = errors.New("not there")

// openPrivate opens path without following a symlink and checks by
// fstat that it is of type typ, the caller's, and closed to group and
// others; errNotThere if it does not exist.
func openPrivate(path string, flags int, typ uint32) (int, error) {
	fd, err := unix.Open(path, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err == unix.ENOENT {
		return -1, errNotThere
	}
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != typ || int(st.Uid) != unix.Getuid() || st.Mode&0o077 != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("%s is not a private file of yours (mode 0600, or 0700 for the directory); fix: remove it", path)
	}
	return fd, nil
}

// MaxPlans bounds the store: one plan per command line and directory
// would otherwise pile up without end where commands vary (a build
// running `nsbox run` on every file). Save makes room by removing the
// least recently written half.
const MaxPlans = 128

// Save writes the plan p for its invocation, replacing any older one
// atomically.
func (s *Store) Save(p *Plan) error {
	dir := filepath.Join(s.dir, StoreDir)
	s.makeRoom(dir)
	name := Name(p.Argv, p.Cwd)
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.new-%d", name, unix.Getpid()))
	fd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("save the replay plan: %w", err)
	}
	b := p.Encode(s.key)
	for len(b) > 0 && err == nil {
		var n int
		n, err = unix.Write(fd, b)
		b = b[n:]
	}
	unix.Close(fd)
	if err == nil {
		err = unix.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		unix.Unlink(tmp)
		return fmt.Errorf("save the replay plan: %w", err)
	}
	return nil
}

// Remove removes the plan of the invocation argv run in cwd, if any.
func (s *Store) Remove(argv []byte, cwd string) {
	unix.Unlink(filepath.Join(s.dir, StoreDir, Name(argv, cwd)))
}

// makeRoom removes the oldest half of the plans in dir once it holds
// MaxPlans (and what a Save that died left behind).
func (s *Store) makeRoom(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) < MaxPlans {
		return
	}
	type plan struct {
		name  string
		mtime int64
	}
	var plans []plan
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			plans = append(plans, plan{e.Name(), fi.ModTime().UnixNano()})
		}
	}
	sort.Slice(plans, func(i, j int) bool { return plans[i].mtime < plans[j].mtime })
	for _, p := range plans[:len(plans)-MaxPlans/2] {
		unix.Unlink(filepath.Join(dir, p.name))
	}
}
