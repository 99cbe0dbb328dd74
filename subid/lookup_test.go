package subid

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/user"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	tfs "gotest.tools/v3/fs"
)

var alice = Owner{Name: "alice", UID: 1000}

// clearEnv makes sure the caller's environment does not override the files.
func clearEnv(t *testing.T) {
	t.Setenv(EnvUIDFile, "")
	t.Setenv(EnvGIDFile, "")
}

// withNsswitch points nsswitchConf at a file holding content for the test.
func withNsswitch(t *testing.T, content string) {
	dir := tfs.NewDir(t, "nsswitch", tfs.WithFile("nsswitch.conf", content))
	old := nsswitchConf
	nsswitchConf = dir.Join("nsswitch.conf")
	t.Cleanup(func() { nsswitchConf = old })
}

func subidFiles(t *testing.T) *tfs.Dir {
	return tfs.NewDir(t, "subid",
		tfs.WithFile("subuid", "# uids\nbob:100000:65536\nalice:165536:65536\n1000:300000:10\n"),
		tfs.WithFile("subgid", "alice:200000:1000\n"),
	)
}

func TestPath(t *testing.T) {
	clearEnv(t)
	assert.Equal(t, Source{}.Path(UIDs), "/etc/subuid")
	assert.Equal(t, Source{}.Path(GIDs), "/etc/subgid")

	t.Setenv(EnvUIDFile, "/env/subuid")
	t.Setenv(EnvGIDFile, "/env/subgid")
	assert.Equal(t, Source{}.Path(UIDs), "/env/subuid")
	assert.Equal(t, Source{}.Path(GIDs), "/env/subgid")

	s := Source{UIDFile: "/field/subuid", GIDFile: "/field/subgid"}
	assert.Equal(t, s.Path(UIDs), "/field/subuid")
	assert.Equal(t, s.Path(GIDs), "/field/subgid")
}

func TestKindString(t *testing.T) {
	assert.Equal(t, UIDs.String(), "subuid")
	assert.Equal(t, GIDs.String(), "subgid")
}

func TestLookupFields(t *testing.T) {
	clearEnv(t)
	dir := subidFiles(t)
	s := Source{UIDFile: dir.Join("subuid"), GIDFile: dir.Join("subgid")}

	got, err := s.Lookup(alice, UIDs)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, []Range{{165536, 65536}, {300000, 10}})

	got, err = s.Lookup(alice, GIDs)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, []Range{{200000, 1000}})

	got, err = s.Lookup(Owner{Name: "carol", UID: 1002}, GIDs)
	assert.NilError(t, err)
	assert.Assert(t, got == nil)
}

func TestLookupEnv(t *testing.T) {
	dir := subidFiles(t)
	t.Setenv(EnvUIDFile, dir.Join("subuid"))
	t.Setenv(EnvGIDFile, dir.Join("subgid"))

	got, err := Source{}.Lookup(Owner{Name: "bob", UID: 1001}, UIDs)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, []Range{{100000, 65536}})

	got, err = Source{}.Lookup(alice, GIDs)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, []Range{{200000, 1000}})

	// The field wins over the environment.
	other := tfs.NewDir(t, "other", tfs.WithFile("subgid", "alice:7:7\n"))
	got, err = Source{GIDFile: other.Join("subgid")}.Lookup(alice, GIDs)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, []Range{{7, 7}})
}

func TestLookupMissingFile(t *testing.T) {
	clearEnv(t)
	dir := tfs.NewDir(t, "empty")
	s := Source{UIDFile: dir.Join("subuid"), GIDFile: dir.Join("nodir", "subgid")}
	for _, kind := range []Kind{UIDs, GIDs} {
		got, err := s.Lookup(alice, kind)
		assert.NilError(t, err)
		assert.Assert(t, got == nil)
	}
}

func TestLookupReadError(t *testing.T) {
	clearEnv(t)
	dir := tfs.NewDir(t, "isdir", tfs.WithDir("subuid"))
	path := dir.Join("subuid")
	_, err := Source{UIDFile: path}.Lookup(alice, UIDs)
	assert.Error(t, err, "read "+path+": is a directory")
	assert.Assert(t, errors.Is(err, syscall.EISDIR))
}

func TestLookupParseError(t *testing.T) {
	clearEnv(t)
	dir := tfs.NewDir(t, "bad", tfs.WithFile("subuid", "alice:1:1\nbob:1:0\n"))
	path := dir.Join("subuid")
	_, err := Source{UIDFile: path}.Lookup(alice, UIDs)
	var pe *ParseError
	assert.Assert(t, errors.As(err, &pe))
	assert.Equal(t, pe.File, path)
	assert.Equal(t, pe.Line, 2)
	assert.Assert(t, is.Contains(err.Error(), path+":2: count is 0"))
}

const fakeGetsubids = `#!/bin/sh
echo "$*" >> "${0%/*}/calls"
if [ "$1" = "-g" ]; then
	echo "0: $2 400000 1000"
	echo "1: $2 500000 10"
else
	echo "0: $1 300000 65536"
fi
`

// fakeDir makes a directory holding an executable "getsubids" with the
// given script. The script should log its arguments to "calls" beside it.
func fakeDir(t *testing.T, script string) *tfs.Dir {
	return tfs.NewDir(t, "getsubids",
		tfs.WithFile("getsubids", script, tfs.WithMode(0o755)))
}

// calls returns the argument lines the fake getsubids in dir logged.
func calls(t *testing.T, dir *tfs.Dir) []string {
	data, err := os.ReadFile(dir.Join("calls"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	assert.NilError(t, err)
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func TestLookupGetsubids(t *testing.T) {
	clearEnv(t)
	files := subidFiles(t)
	fake := fakeDir(t, fakeGetsubids)
	s := Source{
		UIDFile:   files.Join("subuid"),
		GIDFile:   files.Join("subgid"),
		Getsubids: fake.Join("getsubids"),
	}

	got, err := s.Lookup(alice, UIDs)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, []Range{{300000, 65536}})

	got, err = s.Lookup(alice, GIDs)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, []Range{{400000, 1000}, {500000, 10}})

	assert.DeepEqual(t, calls(t, fake), []string{"alice", "-g alice"})
}

func TestLookupGetsubidsSkippedWithoutName(t *testing.T) {
	clearEnv(t)
	files := subidFiles(t)
	fake := fakeDir(t, fakeGetsubids)
	s := Source{UIDFile: files.Join("subuid"), Getsubids: fake.Join("getsubids")}

	got, err := s.Lookup(Owner{UID: 1000}, UIDs)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, []Range{{300000, 10}})

	// A name getsubids would take for an option is not passed either.
	got, err = s.Lookup(Owner{Name: "-g", UID: 1000}, UIDs)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, []Range{{300000, 10}})

	assert.Assert(t, calls(t, fake) == nil)
}

func TestLookupGetsubidsFallback(t *testing.T) {
	tests := []struct {
		name   string
		script string // empty: the program does not exist
	}{
		{name: "fails", script: "#!/bin/sh\necho \"0: $1 1 1\"\necho Error fetching ranges >&2\nexit 1\n"},
		{name: "missing"},
		{name: "prints nothing", script: "#!/bin/sh\nexit 0\n"},
		{name: "malformed", script: "#!/bin/sh\necho \"0: $1 300000 65536\"\necho garbage\n"},
		{name: "no index", script: "#!/bin/sh\necho \"$1 300000 65536\"\n"},
		{name: "zero count", script: "#!/bin/sh\necho \"0: $1 300000 0\"\n"},
		{name: "overflow", script: "#!/bin/sh\necho \"0: $1 4294967295 1\"\n"},
		{name: "negative", script: "#!/bin/sh\necho \"0: $1 -1 1\"\n"},
		{name: "hangs", script: "#!/bin/sh\nexec sleep 3\n"},
		{name: "hangs, output held by a child", script: "#!/bin/sh\necho \"0: $1 300000 65536\"\nsleep 3\n"},
	}
	old := getsubidsTimeout
	getsubidsTimeout = 200 * time.Millisecond
	t.Cleanup(func() { getsubidsTimeout = old })
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			files := subidFiles(t)
			fake := tfs.NewDir(t, "fake")
			if tc.script != "" {
				fake = fakeDir(t, tc.script)
			}
			s := Source{
				UIDFile:   files.Join("subuid"),
				GIDFile:   files.Join("subgid"),
				Getsubids: fake.Join("getsubids"),
			}
			got, err := s.Lookup(alice, UIDs)
			assert.NilError(t, err)
			assert.DeepEqual(t, got, []Range{{165536, 65536}, {300000, 10}})

			got, err = s.Lookup(alice, GIDs)
			assert.NilError(t, err)
			assert.DeepEqual(t, got, []Range{{200000, 1000}})
		})
	}
}

// TestLookupGetsubidsFromPath checks when the zero Source runs getsubids
// from PATH: only for a subid database in nsswitch.conf served by
// something other than files, and only when the file is not overridden.
func TestLookupGetsubidsFromPath(t *testing.T) {
	fake := fakeDir(t, fakeGetsubids)
	t.Setenv("PATH", fake.Path())

	t.Run("nss", func(t *testing.T) {
		clearEnv(t)
		withNsswitch(t, "passwd: files\nsubid: sss\n")
		got, err := Source{}.Lookup(alice, GIDs)
		assert.NilError(t, err)
		assert.DeepEqual(t, got, []Range{{400000, 1000}, {500000, 10}})
		assert.DeepEqual(t, calls(t, fake), []string{"-g alice"})
	})

	files := subidFiles(t)
	t.Run("env override", func(t *testing.T) {
		withNsswitch(t, "subid: sss\n")
		t.Setenv(EnvUIDFile, files.Join("subuid"))
		got, err := Source{}.Lookup(alice, UIDs)
		assert.NilError(t, err)
		assert.DeepEqual(t, got, []Range{{165536, 65536}, {300000, 10}})
	})
	t.Run("field override", func(t *testing.T) {
		clearEnv(t)
		withNsswitch(t, "subid: sss\n")
		got, err := Source{UIDFile: files.Join("subuid")}.Lookup(alice, UIDs)
		assert.NilError(t, err)
		assert.DeepEqual(t, got, []Range{{165536, 65536}, {300000, 10}})
	})
	for _, conf := range []string{"", "passwd: files\n", "subid: files\n", "#subid: sss\n"} {
		t.Run("no nss "+strings.TrimSpace(conf), func(t *testing.T) {
			clearEnv(t)
			withNsswitch(t, conf)
			// This reads the machine's /etc/subuid; only whether
			// getsubids ran matters here.
			_, _ = Source{}.Lookup(alice, UIDs)
		})
	}
	assert.DeepEqual(t, calls(t, fake), []string{"-g alice"})
}

func TestNssSubid(t *testing.T) {
	tests := []struct {
		conf string
		want bool
	}{
		{"", false},
		{"passwd: files systemd\ngroup: files\n", false},
		{"subid: sss\n", true},
		{"passwd: files\nsubid:\tsss files\n", true},
		{"  SubID :  freeipa\n", true},
		{"subid: files sss\n", false},
		{"subid:\n", false},
		{"# subid: sss\n", false},
		{"subids: sss\n", false},
		{"subid: sss # comment", true},
	}
	for _, tc := range tests {
		t.Run(tc.conf, func(t *testing.T) {
			withNsswitch(t, tc.conf)
			assert.Equal(t, nssSubid(), tc.want)
		})
	}
	t.Run("missing", func(t *testing.T) {
		old := nsswitchConf
		nsswitchConf = filepath.Join(t.TempDir(), "none")
		t.Cleanup(func() { nsswitchConf = old })
		assert.Assert(t, !nssSubid())
	})
}

func TestCurrentOwner(t *testing.T) {
	owner, err := CurrentOwner()
	assert.NilError(t, err)
	assert.Equal(t, owner.UID, uint32(os.Getuid()))
	if owner.Name != "" {
		u, err := user.LookupUser(owner.Name)
		assert.NilError(t, err)
		assert.Equal(t, uint32(u.Uid), owner.UID)
	} else {
		_, err := user.LookupUid(os.Getuid())
		assert.Assert(t, err != nil)
	}
}

// TestCurrentOwnerPasswdFile reads a passwd file of the test's own: the
// first entry for the uid names the owner, no entry or no file leaves
// Name empty, and an unreadable file is an error naming it.
func TestCurrentOwnerPasswdFile(t *testing.T) {
	dir := t.TempDir()
	old := passwdFile
	t.Cleanup(func() { passwdFile = old })
	uid := os.Getuid()

	passwdFile = filepath.Join(dir, "passwd")
	assert.NilError(t, os.WriteFile(passwdFile, []byte(fmt.Sprintf(
		"other:x:%d:1::/:/bin/sh\nfirst:x:%d:1::/:/bin/sh\nsecond:x:%d:1::/:/bin/sh\n", uid+1, uid, uid)), 0o644))
	owner, err := CurrentOwner()
	assert.NilError(t, err)
	assert.Equal(t, owner, Owner{UID: uint32(uid), Name: "first"})

	assert.NilError(t, os.WriteFile(passwdFile, []byte(fmt.Sprintf("other:x:%d:1::/:/bin/sh\n", uid+1)), 0o644))
	owner, err = CurrentOwner()
	assert.NilError(t, err)
	assert.Equal(t, owner, Owner{UID: uint32(uid)})

	passwdFile = filepath.Join(dir, "missing")
	owner, err = CurrentOwner()
	assert.NilError(t, err)
	assert.Equal(t, owner, Owner{UID: uint32(uid)})

	passwdFile = dir // a directory: open works, read fails
	owner, err = CurrentOwner()
	assert.ErrorContains(t, err, fmt.Sprintf("look up uid %d in %s: ", uid, dir))
	assert.Equal(t, owner, Owner{UID: uint32(uid)})
}
