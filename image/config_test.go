package image

import (
	"testing"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
)

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]unix.Signal{
		"SIGTERM": unix.SIGTERM, "term": unix.SIGTERM, "9": unix.SIGKILL, "SIGQUIT": unix.SIGQUIT,
		"SIGRTMIN+3": 37, "RTMIN": 34, "SIGRTMAX-1": 63, "SIGRTMAX": 64,
	} {
		got, err := parseSignal(in)
		assert.NilError(t, err, in)
		assert.Equal(t, got, want, in)
	}
	for _, in := range []string{"", "0", "65", "-1", "SIGNOPE", "RTMIN-1", "RTMAX+1", "RTMIN+x", "RTMIN+31"} {
		_, err := parseSignal(in)
		assert.ErrorContains(t, err, "not a signal", in)
	}
}

func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{"SIGTERM", "RTMIN+3", "15", "RTMAX-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if sig, err := parseSignal(s); err == nil && (sig < 1 || sig > 64) {
			t.Fatalf("%q: %d", s, sig)
		}
	})
}
