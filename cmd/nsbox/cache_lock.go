package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/fdtree"
	"github.com/nsbox/nsbox/cmd/nsbox/internal/state"
	"golang.org/x/sys/unix"
)

// A cache in use is locked: the launcher of every sandbox that binds a
// cache (--cache NAME, --home NAME) holds a shared flock(2) on the
// cache's directory (cache/NAME, home/NAME) for as long as it lives,
// through the hand-off to the small supervisor too. nsbox cache rm takes
// the lock exclusive, without waiting: it is refused while a sandbox uses
// the cache, with a line naming the sandbox, and a launcher that starts
// while the cache is being removed is refused in turn. The kernel drops a
// lock when its holder dies, however it dies.

// lockCacheInUse takes a shared lock on dir, the cache called name, for
// the rest of this process. It checks that the directory locked is still
// the one at dir: a cache rm may have removed it between the open and the
// lock, and then it is made again.
func lockCacheInUse(dir, name string) error {
	for try := 0; try < 3; try++ {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("lock the cache %s (%s): %w", name, dir, err)
		}
		if err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); err != nil {
			unix.Close(fd)
			if errors.Is(err, unix.EWOULDBLOCK) {
				return fmt.Errorf("cache %s is being removed (nsbox cache rm); fix: try again when it is done", name)
			}
			return fmt.Errorf("lock the cache %s (%s): %w", name, dir, err)
		}
		var held, now unix.Stat_t
		if unix.Fstat(fd, &held) == nil && unix.Lstat(dir, &now) == nil && held.Dev == now.Dev && held.Ino == now.Ino {
			heldForLife = append(heldForLife, fd)
			return nil
		}
		unix.Close(fd)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create the cache directory %s: %w", dir, err)
		}
	}
	return fmt.Errorf("cache %s keeps being removed under nsbox; fix: try again", name)
}

// removeCache removes the cache e, by descriptor (the tree is what
// sandboxes wrote: package fdtree), unless a running sandbox holds it.
func removeCache(e cacheEntry) error {
	fd, err := unix.Open(e.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == nil {
		defer unix.Close(fd)
		if err := lockExclusive(fd, e.path); err != nil {
			users := cacheUsers(e.path)
			switch len(users) {
			case 0:
				return fmt.Errorf("cache rm %s: in use by a running sandbox (not in this user's state directory); fix: end it first", e.name)
			case 1:
				return fmt.Errorf("cache rm %s: in use by the running sandbox %s; fix: end it first (nsbox stop %s)", e.name, users[0], users[0])
			}
			return fmt.Errorf("cache rm %s: in use by the running sandboxes %s; fix: end them first (nsbox stop NAME)", e.name, strings.Join(users, ", "))
		}
	}
	if err := fdtree.RemoveAll(e.path); err != nil {
		return fmt.Errorf("cache rm %s: %w; fix: files of other ids go with root of a sandbox: nsbox run --root --bind %s -- rm -rf %s", e.name, err, e.path, e.path)
	}
	return nil
}

// launcherExit bounds how long cache rm waits for a lock that no running
// sandbox explains: the launcher of a sandbox that just ended removes its
// state entry a moment before it exits and drops its locks.
const launcherExit = 3 * time.Second

// lockExclusive takes the exclusive lock on the cache open at fd, without
// waiting while a running sandbox binds it, and up to launcherExit while
// none does (the holder is a launcher on its way out).
func lockExclusive(fd int, dir string) error {
	deadline := time.Now().Add(launcherExit)
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) || len(cacheUsers(dir)) > 0 {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cacheUsers returns the names of the running sandboxes that bind
// something under dir; one recorded in another state directory (another
// XDG_RUNTIME_DIR) is not found.
func cacheUsers(dir string) []string {
	var names []string
	sdir, err := state.Dir()
	if err != nil {
		return nil
	}
	live, _, _ := state.List(sdir)
	for _, l := range live {
		if l.Spec != nil {
			for _, m := range l.Spec.Mounts {
				if m.Source == dir || strings.HasPrefix(m.Source, dir+string(filepath.Separator)) {
					names = append(names, l.Name)
					break
				}
			}
		}
		l.Close()
	}
	return names
}
