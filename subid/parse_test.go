package subid

import (
	"errors"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestParse(t *testing.T) {
	alice := Owner{Name: "alice", UID: 1000}
	tests := []struct {
		name    string
		input   string
		owner   Owner
		want    []Range
		wantErr string // exact Error() when not empty
	}{
		{
			name:  "by name",
			input: "alice:100000:65536\n",
			owner: alice,
			want:  []Range{{100000, 65536}},
		},
		{
			name:  "by uid",
			input: "1000:200000:65536\n",
			owner: alice,
			want:  []Range{{200000, 65536}},
		},
		{
			name:  "by uid with leading zeros",
			input: "01000:200000:65536\n",
			owner: alice,
			want:  []Range{{200000, 65536}},
		},
		{
			name:  "by uid without name",
			input: "alice:1:1\n1000:2:2\n",
			owner: Owner{UID: 1000},
			want:  []Range{{2, 2}},
		},
		{
			name:  "several ranges in file order",
			input: "alice:300000:10\nbob:100000:65536\n1000:100:5\nalice:200000:20\n",
			owner: alice,
			want:  []Range{{300000, 10}, {100, 5}, {200000, 20}},
		},
		{
			name:  "comments, blank lines and whitespace",
			input: "# subordinate ids\n\n   \t\n  # indented comment\n  alice:100000:65536  \r\n\t\n",
			owner: alice,
			want:  []Range{{100000, 65536}},
		},
		{
			name:  "no final newline",
			input: "alice:5:6",
			owner: alice,
			want:  []Range{{5, 6}},
		},
		{
			name:  "other users ignored",
			input: "bob:100000:65536\n1001:200000:65536\nalicia:1:1\n",
			owner: alice,
			want:  nil,
		},
		{
			name:  "empty input",
			input: "",
			owner: alice,
			want:  nil,
		},
		{
			name:  "name that is not a uid",
			input: "1000x:1:1\n",
			owner: alice,
			want:  nil,
		},
		{
			name:  "largest range",
			input: "alice:0:4294967295\nalice:4294967294:1\n",
			owner: alice,
			want:  []Range{{0, 4294967295}, {4294967294, 1}},
		},
		{
			name:    "too few fields",
			input:   "# header\nalice:100000\n",
			owner:   alice,
			wantErr: `subuid:2: "alice:100000" has 2 colon-separated fields, want 3 (owner:start:count); fix: write it as owner:start:count, e.g. alice:100000:65536, or delete it`,
		},
		{
			name:    "too many fields, other user",
			input:   "alice:1:1\n\nbob:1:2:3\n",
			owner:   alice,
			wantErr: `subuid:3: "bob:1:2:3" has 4 colon-separated fields, want 3 (owner:start:count) (not your entry, but the file is malformed either way); fix: write it as owner:start:count, e.g. alice:100000:65536, or delete it`,
		},
		{
			name:    "empty owner",
			input:   ":100000:65536\n",
			owner:   alice,
			wantErr: `subuid:1: ":100000:65536" has an empty owner field; fix: put a login name or numeric uid before the first colon, or delete the line`,
		},
		{
			name:    "start not a number",
			input:   "alice:10k:65536\n",
			owner:   alice,
			wantErr: `subuid:1: start "10k" is not a decimal number; fix: use a plain decimal number (no sign, spaces or hex), or delete the line`,
		},
		{
			name:    "negative count, other user",
			input:   "bob:1:-5\n",
			owner:   alice,
			wantErr: `subuid:1: count "-5" is not a decimal number (not your entry, but the file is malformed either way); fix: use a plain decimal number (no sign, spaces or hex), or delete the line`,
		},
		{
			name:    "empty count",
			input:   "alice:1:\n",
			owner:   alice,
			wantErr: `subuid:1: count "" is not a decimal number; fix: use a plain decimal number (no sign, spaces or hex), or delete the line`,
		},
		{
			name:    "start too large",
			input:   "alice:99999999999999999999999:1\n",
			owner:   alice,
			wantErr: `subuid:1: start "99999999999999999999999" is larger than 4294967295; fix: use a plain decimal number (no sign, spaces or hex), or delete the line`,
		},
		{
			name:    "zero count",
			input:   "alice:1:1\nalice:100000:0\n",
			owner:   alice,
			wantErr: `subuid:2: count is 0, but a range must hold at least one id; fix: give the range a count of at least 1 (65536 is usual), or delete the line`,
		},
		{
			name:    "zero count, other user",
			input:   "1001:100000:0\n",
			owner:   alice,
			wantErr: `subuid:1: count is 0, but a range must hold at least one id (not your entry, but the file is malformed either way); fix: give the range a count of at least 1 (65536 is usual), or delete the line`,
		},
		{
			name:    "overflow",
			input:   "alice:4294967295:1\n",
			owner:   alice,
			wantErr: `subuid:1: range 4294967295+1 ends at id 4294967295, past the largest mappable id 4294967294; fix: lower start or count so that start+count-1 <= 4294967294`,
		},
		{
			name:    "overflow past 2^32",
			input:   "alice:4000000000:4000000000\n",
			owner:   alice,
			wantErr: `subuid:1: range 4000000000+4000000000 ends at id 7999999999, past the largest mappable id 4294967294; fix: lower start or count so that start+count-1 <= 4294967294`,
		},
		{
			name:    "newline in field stays one line",
			input:   "alice:1\r2:3\n",
			owner:   alice,
			wantErr: `subuid:1: start "1\r2" is not a decimal number; fix: use a plain decimal number (no sign, spaces or hex), or delete the line`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tc.input), "subuid", tc.owner)
			if tc.wantErr != "" {
				assert.Error(t, err, tc.wantErr)
				var pe *ParseError
				assert.Assert(t, errors.As(err, &pe))
				assert.Equal(t, pe.File, "subuid")
				assert.Assert(t, got == nil)
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, got, tc.want)
		})
	}
}

func TestParseErrorLongLine(t *testing.T) {
	line := strings.Repeat("x", 100000)
	_, err := Parse(strings.NewReader(line+"\n"), "/etc/subgid", Owner{Name: "alice"})
	var pe *ParseError
	assert.Assert(t, errors.As(err, &pe))
	assert.Equal(t, pe.Line, 1)
	assert.Assert(t, len(err.Error()) < 400, err.Error())
	assert.Assert(t, is.Contains(err.Error(), `/etc/subgid:1: "xxxx`))
}

func TestParseErrorFileName(t *testing.T) {
	err := &ParseError{File: "a\nb", Line: 3, Msg: "bad"}
	assert.Equal(t, err.Error(), `"a\nb":3: bad`)
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestParseReadError(t *testing.T) {
	_, err := Parse(failingReader{}, "/etc/subuid", Owner{Name: "alice"})
	assert.Error(t, err, "read /etc/subuid: boom")
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"alice:100000:65536\n",
		"1000:200000:65536\nbob:1:1\n",
		"# comment\n\n  alice:1:2  \n",
		"alice:0:4294967295\n",
		"alice:4294967295:1\n",
		"alice:1:0\n",
		"alice:-1:5\n",
		":1:1\n",
		"alice:1\n",
		"alice:1:2:3\n",
		"alice:99999999999999999999:1\n",
		"alice:1:1\r\n1000:2:2",
		"\xff:1:1\n",
	} {
		f.Add(seed, "alice", uint32(1000))
	}
	f.Fuzz(func(t *testing.T, input, name string, uid uint32) {
		ranges, err := Parse(strings.NewReader(input), "fuzz", Owner{Name: name, UID: uid})
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *ParseError", err, err)
			}
			if pe.Line < 1 {
				t.Fatalf("error %v has line %d", err, pe.Line)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error %q spans lines", err)
			}
			if ranges != nil {
				t.Fatalf("ranges %v returned with error %v", ranges, err)
			}
			return
		}
		for _, r := range ranges {
			if r.Count == 0 {
				t.Fatalf("range %+v has count 0", r)
			}
			if uint64(r.Start)+uint64(r.Count)-1 > MaxID {
				t.Fatalf("range %+v overflows", r)
			}
		}
	})
}
