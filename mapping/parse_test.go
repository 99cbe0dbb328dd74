package mapping

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Mode
		wantErr string
	}{
		{in: "auto", want: Auto},
		{in: "single", want: Single},
		{in: "subids", want: Subids},
		{in: "foo", wantErr: "foo: unknown mode; fix: use auto, single or subids"},
		{in: "", wantErr: `"": unknown mode; fix: use auto, single or subids`},
		{in: "Auto", wantErr: "Auto: unknown mode; fix: use auto, single or subids"},
		{in: "a\nb", wantErr: `"a\nb": unknown mode; fix: use auto, single or subids`},
	} {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			m, err := ParseMode(tc.in)
			if tc.wantErr != "" {
				assert.Error(t, err, tc.wantErr)
				assert.Assert(t, errors.Is(err, ErrUnknownMode))
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, m, tc.want)
			assert.Equal(t, m.String(), tc.in)
		})
	}
	assert.Equal(t, Mode(7).String(), "Mode(7)")
}

func TestParseExtent(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Extent
		wantErr string // substring; "" means success
	}{
		{in: "0:1000:1", want: Extent{0, 1000, 1}},
		{in: "1:100000:65536", want: Extent{1, 100000, 65536}},
		{in: "007:08:09", want: Extent{7, 8, 9}},
		{in: "4294967294:0:1", want: Extent{4294967294, 0, 1}},
		{in: "0:4294967294:1", want: Extent{0, 4294967294, 1}},
		{in: "0:0:4294967295", want: Extent{0, 0, 4294967295}},
		{in: "", wantErr: `extent "": has 1 colon-separated fields, want 3`},
		{in: "0:1000", wantErr: `extent "0:1000": has 2 colon-separated fields, want 3 (INNER:OUTER:COUNT); fix: write it like 0:1000:1`},
		{in: "0:1000:1:", wantErr: "has 4 colon-separated fields"},
		{in: "a:1:1", wantErr: `extent "a:1:1": inner a is not a decimal number; fix: use plain decimal numbers`},
		{in: "-1:1:1", wantErr: "inner -1 is not a decimal number"},
		{in: "+1:1:1", wantErr: "inner +1 is not a decimal number"},
		{in: " 0:1:1", wantErr: `inner " 0" is not a decimal number`},
		{in: "0x10:1:1", wantErr: "inner 0x10 is not a decimal number"},
		{in: "0:1_000:1", wantErr: "outer 1_000 is not a decimal number"},
		{in: "0::1", wantErr: `outer "" is not a decimal number`},
		{in: "0:1:", wantErr: `count "" is not a decimal number`},
		{in: "0:0:4294967296", wantErr: "count 4294967296 is larger than 4294967295"},
		{in: "0:0:0", wantErr: `extent "0:0:0": count is 0, but an extent must map at least one id; fix: use a count of at least 1`},
		{in: "4294967295:0:1", wantErr: `extent "4294967295:0:1": inner ids 4294967295–4294967295 run past 4294967294`},
		{in: "0:4294967295:1", wantErr: "outer ids 4294967295–4294967295 run past 4294967294"},
		{in: "1:0:4294967295", wantErr: "inner ids 1–4294967295 run past 4294967294"},
		{in: "0:4294967290:10", wantErr: "outer ids 4294967290–4294967299 run past 4294967294"},
		{in: "0:1\n:1", wantErr: `extent "0:1\n:1": outer "1\n" is not a decimal number`},
	} {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			e, err := ParseExtent(tc.in)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				assert.Assert(t, errors.Is(err, ErrInvalidExtent))
				assert.Assert(t, !strings.Contains(err.Error(), "\n"), "error is one line: %q", err)
				assert.Assert(t, is.Contains(err.Error(), "fix: "))
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, e, tc.want)
		})
	}
}

func TestFormat(t *testing.T) {
	assert.Equal(t, Format(nil), "")
	assert.Equal(t, Format([]Extent{{0, 100000, 1000}, {1000, 1000, 1}, {1001, 101000, 64535}}),
		"0 100000 1000\n1000 1000 1\n1001 101000 64535\n")
	assert.Equal(t, Format([]Extent{{4294967294, 0, 1}}), "4294967294 0 1\n")
}

func FuzzParseExtent(f *testing.F) {
	for _, s := range []string{
		"0:1000:1", "1:100000:65536", "4294967294:0:1", "0:0:4294967295",
		"1:0:4294967295", "0:0:0", "", ":::", "0:1", "-1:2:3", "99999999999:1:1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseExtent(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidExtent) {
				t.Fatalf("ParseExtent(%q): error %q does not wrap ErrInvalidExtent", s, err)
			}
			if msg := err.Error(); strings.ContainsAny(msg, "\n\r") || !strings.Contains(msg, strconv.Quote(s)) {
				t.Fatalf("ParseExtent(%q): error %q is not one line naming the input", s, msg)
			}
			return
		}
		if e.Count == 0 ||
			uint64(e.Inner)+uint64(e.Count) > 1<<32-1 ||
			uint64(e.Outer)+uint64(e.Count) > 1<<32-1 {
			t.Fatalf("ParseExtent(%q) = %+v, which breaks the invariants", s, e)
		}
		text := Format([]Extent{e})
		fields := strings.Fields(text)
		if len(fields) != 3 || !strings.HasSuffix(text, "\n") || strings.Count(text, "\n") != 1 {
			t.Fatalf("Format(%+v) = %q", e, text)
		}
		back, err := ParseExtent(strings.Join(fields, ":"))
		if err != nil || back != e {
			t.Fatalf("round trip of %q: Format gave %q, parsing that gave %+v, %v", s, text, back, err)
		}
	})
}
