package main

import (
	"testing"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
)

func TestParseSignal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want unix.Signal
	}{
		{"KILL", unix.SIGKILL}, {"SIGTERM", unix.SIGTERM}, {"term", unix.SIGTERM},
		{"usr1", unix.SIGUSR1}, {"9", unix.SIGKILL}, {"64", unix.Signal(64)},
	} {
		got, err := parseSignal(tc.in)
		assert.NilError(t, err, tc.in)
		assert.Equal(t, got, tc.want, tc.in)
	}
	for _, bad := range []string{"", "0", "65", "-1", "SIG", "NOPE", "9x"} {
		_, err := parseSignal(bad)
		assert.ErrorContains(t, err, "unknown signal", bad)
	}
}

func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{"KILL", "sigterm", "15", "0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := parseSignal(s)
		if err == nil && (sig < 1 || sig > 64) {
			t.Fatalf("parseSignal(%q) = %d", s, sig)
		}
	})
}

func TestEditEnv(t *testing.T) {
	base := []string{"A=1", "B=2", "C=3"}
	assert.DeepEqual(t, editEnv(base, false, []string{"B"}, []string{"C=4", "D=5"}), []string{"A=1", "C=4", "D=5"})
	assert.DeepEqual(t, editEnv(base, true, nil, []string{"X=1"}), []string{"X=1"})
}
