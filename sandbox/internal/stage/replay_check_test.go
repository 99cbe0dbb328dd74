//go:build nsbox_configcheck

package stage

import (
	"crypto/hmac"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/nsbox/nsbox/internal/replay"
)

// The replay's C side checks a plan's inputs with its own code: it must
// compute what internal/replay recorded, byte for byte, or a plan would
// never match (or, worse, match what it should not).

// Both ways of hashing: with the CPU's SHA extensions where it has them
// (x86-64), and the plain C rounds.
func TestReplayHMACIsGos(t *testing.T) {
	rnd := make([]byte, 70000)
	for i := range rnd {
		rnd[i] = byte(i*7919 + i>>8*31 + i>>13)
	}
	defer replaySHAPortable(false)
	for _, portable := range []bool{false, true} {
		replaySHAPortable(portable)
		for _, size := range []int{0, 1, 55, 56, 63, 64, 65, 127, 128, 129, 1000, 15263, 70000} {
			for _, msg := range [][]byte{[]byte(strings.Repeat("nsbox", size)[:size]), rnd[:size]} {
				for _, key := range [][]byte{[]byte("k"), make([]byte, 32), []byte(strings.Repeat("long key ", 10))} {
					mac := hmac.New(sha256.New, key)
					mac.Write(msg)
					assert.Check(t, is.DeepEqual(replayHMAC(key, msg), mac.Sum(nil)), "portable %v, size %d, key %d", portable, size, len(key))
				}
			}
		}
	}
}

func TestReplayLookIsGos(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	assert.NilError(t, os.WriteFile(file, []byte("some\ncontents\x00with a NUL"), 0o640))
	assert.NilError(t, os.Symlink("f", filepath.Join(dir, "link")))
	assert.NilError(t, os.Symlink("/nonexistent", filepath.Join(dir, "dangling")))
	// The C side formats numbers by hand: a time before 1970 (a negative
	// second) and nanoseconds that need their leading zeros.
	old, tiny := filepath.Join(dir, "old"), filepath.Join(dir, "tiny")
	assert.NilError(t, os.WriteFile(old, nil, 0o4755))
	assert.NilError(t, os.WriteFile(tiny, []byte("x"), 0o600))
	assert.NilError(t, os.Chtimes(old, time.Unix(-5, 100), time.Unix(-1234567890, 999999999)))
	assert.NilError(t, os.Chtimes(tiny, time.Unix(7, 7), time.Unix(1<<40, 0)))
	paths := []string{dir, file, old, tiny, filepath.Join(dir, "link"), filepath.Join(dir, "dangling"), filepath.Join(dir, "missing"),
		filepath.Join(file, "below-a-file"), "/", "/proc/self/uid_map", "/etc/passwd", "/proc/sys/kernel/random/boot_id", "/dev/null"}
	for _, p := range paths {
		for _, kind := range []byte{replay.Stat, replay.Lstat, replay.Contents, replay.Link, replay.FSFlags} {
			assert.Check(t, is.Equal(replayLook(kind, p), replay.Look(kind, p)), "%c %s", kind, p)
		}
	}
	// A namespace file's inode gets the time it is looked up at: plans
	// read its link (replayChecks).
	assert.Check(t, is.Equal(replayLook(replay.Link, "/proc/self/ns/user"), replay.Look(replay.Link, "/proc/self/ns/user")))
	// A file rewritten, a directory given an entry: the first changes,
	// the second does not (a directory's times are not compared).
	before, dirBefore := replay.Look(replay.Stat, file), replay.Look(replay.Stat, dir)
	assert.NilError(t, os.WriteFile(file, []byte("other"), 0o640))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "new"), nil, 0o600))
	assert.Check(t, replayLook(replay.Stat, file) != before)
	assert.Check(t, is.Equal(replayLook(replay.Stat, dir), dirBefore))
}

func TestReplayCredsIsGos(t *testing.T) {
	want, err := replay.Creds()
	assert.NilError(t, err)
	assert.Check(t, is.Contains(want, "Uid:"))
	assert.Check(t, is.Contains(want, "Umask:"))
	assert.Check(t, is.Equal(replayCreds(), want))
}

// The C filler puts each value where state.Template left its hole,
// escaping the maps as encoding/json does (TestTemplateFilledIsTheRecord
// in cmd/nsbox/internal/state holds the template to the Go record; the
// integration test TestFastPathReplaySameRecord the two records).
func TestReplayRecordFill(t *testing.T) {
	tmpl := []byte("{\"name\": \"\x00N\", \"pid\": \x00P, \"start\": \x00S, \"launcher\": \x00L, \"fd\": \x00F,\n" +
		"\"created\": \"\x00T\", \"uidMap\": \"\x00U\", \"gidMap\": \"\x00G\",\n" +
		"\"ns\": [\x00u, \x00m, \x00p, \x00n, \x00i, \x00t, \x00c]}\n")
	v := recordValues{name: "ab12cd34", created: "2026-12-07T16:00:01.12+01:00", uidMap: "         0       1005          1\n",
		gidMap: "a\"b\\c\td<e>&\x01", pid: 42, launcher: 41, fd: 7, start: 1234567890123,
		ns: [7]uint64{1, 2, 3, 4, 5, 6, 4026531837}}
	got, ok := replayRecordFill(tmpl, v)
	assert.Assert(t, ok)
	assert.Equal(t, got, `{"name": "ab12cd34", "pid": 42, "start": 1234567890123, "launcher": 41, "fd": 7,
"created": "2026-12-07T16:00:01.12+01:00", "uidMap": "         0       1005          1\n", "gidMap": "a\"b\\c\td\u003ce\u003e\u0026\u0001",
"ns": [1, 2, 3, 4, 5, 6, 4026531837]}
`)
	// Holes first, last and side by side; text between them copied whole.
	got, ok = replayRecordFill([]byte("\x00N\x00P-\x00L\x00N"), v)
	assert.Check(t, ok)
	assert.Check(t, is.Equal(got, "ab12cd3442-41ab12cd34"))
	_, ok = replayRecordFill([]byte("text then a cut hole\x00"), v)
	assert.Check(t, !ok)
	// A namespace the start did not report is no record.
	v.ns[3] = 0
	_, ok = replayRecordFill(tmpl, v)
	assert.Check(t, !ok)
	_, ok = replayRecordFill([]byte("{\x00Q}"), v)
	assert.Check(t, !ok)
}
