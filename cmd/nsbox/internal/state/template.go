package state

import (
	"bytes"
	"fmt"
	"time"
)

// Template returns the state.json that Handle.Write would write for e,
// with a hole, a NUL and a letter, where each value only the start
// itself knows goes: the replayed start (internal/replay, replay.c)
// fills them in and writes the record as Write does. The holes:
//
//	N  the name              P  PID 1's pid           S  its start time
//	L  the launcher's pid    F  the sealed copy's fd  T  the created time (RFC 3339, nanoseconds)
//	U  the uid map           G  the gid map           (JSON string contents)
//	u m p n i t c  the inodes of the user, mnt, pid, net, ipc, uts and cgroup namespaces
//
// Every namespace of e.Namespaces must be one of those seven: a hole is
// made for each key e has. The encoding of everything else is Write's
// own, so a filled template is byte for byte the record Write makes.
func Template(e *Entry) ([]byte, error) {
	t := *e
	t.Name = holeName
	t.Pid, t.PidStartTime, t.LauncherPid, t.RecordFD = holePid, holeStart, holeLauncher, holeFD
	t.Created = holeCreated
	t.UIDMap, t.GIDMap = holeUIDMap, holeGIDMap
	t.Namespaces = map[string]uint64{}
	holes := nsHoles()
	for k := range e.Namespaces {
		h, ok := holes[k]
		if !ok {
			return nil, fmt.Errorf("record template: no hole for the %s namespace", k)
		}
		t.Namespaces[k] = h.value
	}
	b, err := marshalIndent(&t)
	if err != nil {
		return nil, fmt.Errorf("record template: %w", err)
	}
	b = append(b, '\n')
	subst := []struct {
		text string
		hole byte
	}{
		{`"` + holeName + `"`, 'N'}, {`"` + holeUIDMap + `"`, 'U'}, {`"` + holeGIDMap + `"`, 'G'},
		{`"` + holeCreated.Format(time.RFC3339Nano) + `"`, 'T'},
		{fmt.Sprintf(": %d,", holePid), 'P'}, {fmt.Sprintf(": %d,", holeStart), 'S'},
		{fmt.Sprintf(": %d,", holeLauncher), 'L'}, {fmt.Sprintf(": %d\n", holeFD), 'F'},
	}
	for k := range e.Namespaces {
		h := holes[k]
		subst = append(subst, struct {
			text string
			hole byte
		}{fmt.Sprintf(": %d", h.value), h.hole})
	}
	for _, s := range subst {
		if n := bytes.Count(b, []byte(s.text)); n != 1 {
			return nil, fmt.Errorf("record template: %q occurs %d times", s.text, n)
		}
		// Keep what surrounds the value (the quotes of a string, the
		// ": " and what follows a number): only the value is the hole.
		pre, post := holeAround(s.text)
		b = bytes.Replace(b, []byte(s.text), []byte(pre+"\x00"+string(s.hole)+post), 1)
	}
	return b, nil
}

// holeAround splits a sentinel's text into what stays before and after
// its value.
func holeAround(text string) (pre, post string) {
	switch {
	case text[0] == '"':
		return `"`, `"`
	case text[len(text)-1] == ',' || text[len(text)-1] == '\n':
		return ": ", text[len(text)-1:]
	default:
		return ": ", ""
	}
}

// The sentinel values Template encodes and then replaces by holes;
// Template fails if one of them shows up anywhere else.
const (
	holeName     = "nsbox-hole-name"
	holeUIDMap   = "nsbox-hole-uid-map"
	holeGIDMap   = "nsbox-hole-gid-map"
	holePid      = 1999999001
	holeStart    = 1999999002
	holeLauncher = 1999999003
	holeFD       = 1999999004
)

var holeCreated = time.Date(1999, 9, 9, 9, 9, 9, 999999999, time.UTC)

// nsHoles returns the namespaces' holes, with their sentinel values. A
// function: a package-level map is built at every start of nsbox.
func nsHoles() map[string]nsHole {
	return map[string]nsHole{
		"user": {1999999011, 'u'}, "mnt": {1999999012, 'm'}, "pid": {1999999013, 'p'}, "net": {1999999014, 'n'},
		"ipc": {1999999015, 'i'}, "uts": {1999999016, 't'}, "cgroup": {1999999017, 'c'},
	}
}

// nsHole is a namespace's hole in the template.
type nsHole struct {
	value uint64
	hole  byte
}
