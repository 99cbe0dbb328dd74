package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"b", true}, {"build-42", true}, {"a.b_c-d", true}, {"0abc", true},
		{strings.Repeat("x", 64), true}, {strings.Repeat("x", 65), false},
		{"", false}, {".", false}, {"..", false}, {".hidden", false}, {"-x", false},
		{"a/b", false}, {"a b", false}, {"ä", false}, {"a\x00", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, ValidName(tc.name) == nil, tc.ok)
		})
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"b", "..", "a/b", ".x", "x.y-z_1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidName(s) != nil {
			return
		}
		// A valid name is one path component that stays in the directory.
		if strings.ContainsAny(s, "/\x00") || s[0] == '.' || filepath.Base(s) != s || len(s) > 64 {
			t.Fatalf("ValidName accepted %q", s)
		}
	})
}

func TestRandomName(t *testing.T) {
	a, b := RandomName(), RandomName()
	assert.NilError(t, ValidName(a))
	assert.Equal(t, len(a), 8)
	assert.Check(t, a != b)
}

func TestParseStartTime(t *testing.T) {
	// A command name with spaces and parentheses, as /proc shows it.
	line := "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615\n"
	ppid, n, err := parseStat([]byte(line))
	assert.NilError(t, err)
	assert.Equal(t, ppid, 1)
	assert.Equal(t, n, uint64(987654))

	_, _, err = parseStat([]byte("1 (x) S 1 2"))
	assert.ErrorContains(t, err, "too few fields")
	_, _, err = parseStat([]byte("garbage"))
	assert.ErrorContains(t, err, "no command name")

	self, err := StartTime(os.Getpid())
	assert.NilError(t, err)
	assert.Check(t, self > 0)
}

func FuzzParseStartTime(f *testing.F) {
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 5 1 1 1\n"))
	f.Add([]byte("2 ()) ) S"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseStat(b) // must not panic
	})
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"name":"b","pid":42,"namespaces":{"user":4026531837},"spec":{"process":{"args":["true"]}}}`))
	f.Add([]byte(`{"name":"../x","pid":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err == nil && (e.Pid <= 0 || ValidName(e.Name) != nil) {
			t.Fatalf("Decode accepted %+v", e)
		}
	})
}

func TestDir(t *testing.T) {
	xdg := t.TempDir()
	tmp := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", xdg)
	t.Setenv("TMPDIR", tmp)
	dir, err := Dir()
	assert.NilError(t, err)
	assert.Equal(t, dir, filepath.Join(xdg, "nsbox"))
	st, err := os.Stat(dir)
	assert.NilError(t, err)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o700))

	// Too open: made private again.
	assert.NilError(t, os.Chmod(dir, 0o777))
	_, err = Dir()
	assert.NilError(t, err)
	st, _ = os.Stat(dir)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o700))

	// A symlink in its place is refused, not followed: Dir falls back on
	// the next candidate, $TMPDIR/nsbox-UID.
	other := t.TempDir()
	link := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", link)
	assert.NilError(t, os.Symlink(other, filepath.Join(link, "nsbox")))
	dir, err = Dir()
	assert.NilError(t, err)
	assert.Equal(t, dir, filepath.Join(tmp, fmt.Sprintf("nsbox-%d", os.Getuid())))

	// No candidate usable: the error names each one and why.
	assert.NilError(t, os.Remove(dir))
	assert.NilError(t, os.WriteFile(dir, nil, 0o600))
	_, err = Dir()
	assert.ErrorContains(t, err, "no usable state directory: state directory "+filepath.Join(link, "nsbox")+" is not a directory")
	assert.ErrorContains(t, err, "; state directory "+dir+" is not a directory")
}

func TestDirOwnedBySomeoneElse(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to make a directory someone else owns (make test runs unit tests as root)")
	}
	xdg := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", xdg)
	t.Setenv("TMPDIR", xdg)
	for _, d := range []string{"nsbox", fmt.Sprintf("nsbox-%d", os.Getuid())} {
		assert.NilError(t, os.Mkdir(filepath.Join(xdg, d), 0o700))
		assert.NilError(t, os.Chown(filepath.Join(xdg, d), 4242, 4242))
	}
	_, err := Dir()
	assert.ErrorContains(t, err, "belongs to uid 4242, not to you")
}

func TestReserveClashReleaseAndStale(t *testing.T) {
	dir := t.TempDir()
	h, err := Reserve(dir, "b")
	assert.NilError(t, err)
	assert.Equal(t, h.Path, filepath.Join(dir, "b"))

	// Live: a second Reserve fails (flock conflicts between open files,
	// even in one process), and Get says it is still starting.
	_, err = Reserve(dir, "b")
	assert.Check(t, errors.Is(err, ErrNameInUse), err)
	_, err = Get(dir, "b")
	assert.Check(t, errors.Is(err, ErrNotFound))
	list, refused, err := List(dir)
	assert.NilError(t, err)
	assert.Check(t, is.Len(list, 0))
	assert.Check(t, is.Len(refused, 0))

	e := fakePID1(t, "b")
	assert.NilError(t, h.Write(e))
	got, err := Get(dir, "b")
	assert.NilError(t, err)
	assert.Equal(t, got.Pid, e.Pid)
	assert.Check(t, got.PidFD() >= 0)
	got.Close()
	list, refused, err = List(dir)
	assert.NilError(t, err)
	assert.Equal(t, len(list), 1)
	assert.Check(t, is.Len(refused, 0))
	list[0].Close()

	// Released: gone, and the name is free.
	assert.NilError(t, h.Release())
	_, err = os.Stat(filepath.Join(dir, "b"))
	assert.Check(t, os.IsNotExist(err))

	// Stale: the lock dropped without cleanup, as when the launcher is
	// SIGKILLed. Clean removes it; so does a Reserve of the same name.
	h, err = Reserve(dir, "c")
	assert.NilError(t, err)
	assert.NilError(t, h.Write(&Entry{Name: "c", Pid: 1}))
	h.lock.Close()
	names, err := Clean(dir)
	assert.NilError(t, err)
	assert.Check(t, is.Len(names, 0))
	_, err = os.Stat(filepath.Join(dir, "c"))
	assert.Check(t, os.IsNotExist(err))

	h, err = Reserve(dir, "d")
	assert.NilError(t, err)
	h.lock.Close()
	h2, err := Reserve(dir, "d")
	assert.NilError(t, err)
	defer h2.Release()

	_, err = Reserve(dir, "../etc")
	assert.ErrorContains(t, err, "sandbox name")
}

func TestWaitGone(t *testing.T) {
	dir := t.TempDir()
	h, err := Reserve(dir, "b")
	assert.NilError(t, err)
	assert.NilError(t, h.Write(fakePID1(t, "b")))
	l, err := Get(dir, "b")
	assert.NilError(t, err)
	assert.Check(t, !l.WaitGone(20*time.Millisecond))
	go func() {
		time.Sleep(20 * time.Millisecond)
		h.lock.Close() // the launcher exits
	}()
	assert.Check(t, l.WaitGone(5*time.Second))
	_, err = os.Stat(h.Path)
	assert.Check(t, os.IsNotExist(err))
}

func TestReserveRace(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	results := make(chan error, n)
	handles := make(chan *Handle, n)
	for i := 0; i < n; i++ {
		go func() {
			h, err := Reserve(dir, "x")
			if err == nil {
				handles <- h
			}
			results <- err
		}()
	}
	won := 0
	for i := 0; i < n; i++ {
		if err := <-results; err == nil {
			won++
		} else {
			assert.Check(t, errors.Is(err, ErrNameInUse), err)
		}
	}
	assert.Equal(t, won, 1)
	(<-handles).Release()
}

func TestKeepLog(t *testing.T) {
	dir := t.TempDir()
	h, err := Reserve(dir, "bg")
	assert.NilError(t, err)
	assert.Equal(t, EndedLog(dir, "bg"), "")
	assert.NilError(t, os.WriteFile(h.LogPath(), []byte("out\n"), 0o600))
	assert.NilError(t, h.KeepLog())
	assert.NilError(t, h.Release())
	b, err := os.ReadFile(EndedLog(dir, "bg"))
	assert.NilError(t, err)
	assert.Equal(t, string(b), "out\n")

	// The kept logs are not an entry: Clean leaves them, List skips them.
	live, err := Clean(dir)
	assert.NilError(t, err)
	assert.Check(t, is.Len(live, 0))
	assert.Check(t, EndedLog(dir, "bg") != "")
	list, _, err := List(dir)
	assert.NilError(t, err)
	assert.Check(t, is.Len(list, 0))

	// Nothing to keep: no error, nothing kept.
	h, err = Reserve(dir, "quiet")
	assert.NilError(t, err)
	assert.NilError(t, h.KeepLog())
	assert.NilError(t, h.Release())
	assert.Equal(t, EndedLog(dir, "quiet"), "")
	assert.Equal(t, EndedLog(dir, "../x"), "")
}

// TestWriteReplacesRecord: a rewrite puts the new record at state.json
// whole, leaves no temporary file, and a reader that opened the old one
// before still reads it whole.
func TestWriteReplacesRecord(t *testing.T) {
	dir := t.TempDir()
	h, err := Reserve(dir, "w")
	assert.NilError(t, err)
	defer h.Release()
	p := filepath.Join(h.Path, "state.json")
	assert.NilError(t, h.Write(&Entry{Name: "w", Pid: 1, Cwd: "/first"}))
	old, err := os.Open(p)
	assert.NilError(t, err)
	defer old.Close()
	assert.NilError(t, h.Write(&Entry{Name: "w", Pid: 1, Cwd: "/second, longer than the first"}))

	b, err := os.ReadFile(p)
	assert.NilError(t, err)
	e, err := Decode(b)
	assert.NilError(t, err)
	assert.Equal(t, e.Cwd, "/second, longer than the first")
	ob := make([]byte, 1<<16)
	n, _ := old.Read(ob)
	e, err = Decode(ob[:n])
	assert.NilError(t, err)
	assert.Equal(t, e.Cwd, "/first")
	_, err = os.Lstat(filepath.Join(h.Path, ".state.json.new"))
	assert.Check(t, os.IsNotExist(err), "the temporary file stayed")
}
