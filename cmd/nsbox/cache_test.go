package main

import (
	"regexp"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// isHomeName replaced a regexp (compiled in init(), on every start): it
// must agree with it.
func TestIsHomeNameAgreesWithRegexp(t *testing.T) {
	name := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	long := strings.Repeat("a", 64)
	for _, s := range []string{"", "dev", "a.b-c_d", ".hidden", "-x", "_x", "a/b", "a b", "ü", long, long + "a", "9", "a..", "x\n"} {
		assert.Check(t, is.Equal(isHomeName(s), name.MatchString(s)), "%q", s)
	}
}
