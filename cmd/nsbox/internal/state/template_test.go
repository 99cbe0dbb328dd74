package state

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsbox/nsbox/sandbox"
	"gotest.tools/v3/assert"
)

// fillTemplate is the Go twin of replay.c's record_fill, for this test.
func fillTemplate(tmpl []byte, e *Entry) []byte {
	var out bytes.Buffer
	ns := map[byte]string{'u': "user", 'm': "mnt", 'p': "pid", 'n': "net", 'i': "ipc", 't': "uts", 'c': "cgroup"}
	for i := 0; i < len(tmpl); i++ {
		if tmpl[i] != 0 {
			out.WriteByte(tmpl[i])
			continue
		}
		i++
		switch h := tmpl[i]; h {
		case 'N':
			out.WriteString(e.Name)
		case 'P':
			out.WriteString(strconv.Itoa(e.Pid))
		case 'S':
			out.WriteString(strconv.FormatUint(e.PidStartTime, 10))
		case 'L':
			out.WriteString(strconv.Itoa(e.LauncherPid))
		case 'F':
			out.WriteString(strconv.Itoa(e.RecordFD))
		case 'T':
			out.WriteString(e.Created.Format(time.RFC3339Nano))
		case 'U':
			out.WriteString(strings.ReplaceAll(e.UIDMap, "\n", `\n`))
		case 'G':
			out.WriteString(strings.ReplaceAll(e.GIDMap, "\n", `\n`))
		default:
			out.WriteString(strconv.FormatUint(e.Namespaces[ns[h]], 10))
		}
	}
	return out.Bytes()
}

func sampleEntry() *Entry {
	spec := &sandbox.Spec{Process: sandbox.Process{Args: []string{"true"}, Env: []string{"A=1", "PID=1999"}, Cwd: "/w"},
		Namespaces: sandbox.AllNamespaces()}
	return &Entry{Name: "ab12cd34", Pid: 4242, PidStartTime: 123456, LauncherPid: 4240,
		Created:    time.Date(2026, 12, 7, 16, 0, 1, 120000000, time.FixedZone("", 3600)),
		Namespaces: map[string]uint64{"user": 4026532001, "mnt": 4026532002, "pid": 4026532003, "net": 4026532004, "ipc": 4026532005, "uts": 4026532006, "cgroup": 4026532007},
		UIDMap:     "         0       1005          1\n", GIDMap: "         0       1005          1\n         1     296608      65536\n",
		Cwd: "/w", Spec: spec, RecordFD: 7}
}

// TestTemplateFilledIsTheRecord: a template filled with an entry's values
// is byte for byte what Write writes for that entry.
func TestTemplateFilledIsTheRecord(t *testing.T) {
	e := sampleEntry()
	want, err := marshalIndent(e)
	assert.NilError(t, err)
	want = append(want, '\n')
	tmpl, err := Template(e)
	assert.NilError(t, err)
	assert.Equal(t, bytes.Count(tmpl, []byte{0}), 15)
	assert.Equal(t, string(fillTemplate(tmpl, e)), string(want))
}

// TestTemplateRefusesSentinelElsewhere: a sentinel value anywhere else in
// the record (here an argument of the command) makes no template, never
// a wrong one.
func TestTemplateRefusesSentinelElsewhere(t *testing.T) {
	e := sampleEntry()
	e.Spec.Process.Args = append(e.Spec.Process.Args, holeName)
	_, err := Template(e)
	assert.ErrorContains(t, err, "occurs 2 times")
	e = sampleEntry()
	e.Spec.Process.Env = append(e.Spec.Process.Env, fmt.Sprintf("X=%s", holeName), fmt.Sprint(holePid))
	tmpl, err := Template(e)
	assert.NilError(t, err) // inside other strings: not the values
	want, err := marshalIndent(e)
	assert.NilError(t, err)
	assert.Equal(t, string(fillTemplate(tmpl, e)), string(want)+"\n")
}
