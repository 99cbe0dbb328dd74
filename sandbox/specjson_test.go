package sandbox

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/nsbox/nsbox/mapping"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func testSpec() *Spec {
	return &Spec{
		Process: Process{
			Args: []string{"sh", "-c", "echo hi"}, Env: []string{"PATH=/usr/bin:/bin"},
			Cwd: "/tmp", UID: 1000, GID: 1000, NoNewPrivs: true, Terminal: true,
		},
		Namespaces: AllNamespaces(),
		Hostname:   "box",
		Mapping: mapping.Plan{
			UIDs:    []mapping.Extent{{Inner: 1000, Outer: 1000, Count: 1}},
			GIDs:    []mapping.Extent{{Inner: 1000, Outer: 1000, Count: 1}},
			UID:     1000,
			GID:     1000,
			HostUID: 1000, HostGID: 1000,
		},
	}
}

func TestSpecRoundTrip(t *testing.T) {
	want := testSpec()
	b, err := marshalSpec(want)
	assert.NilError(t, err)
	got, err := DecodeSpec(bytes.NewReader(b))
	assert.NilError(t, err)
	// reflect, not go-cmp: Spec has an unexported field (the
	// bubblewrap-only settings), zero on both sides.
	assert.Check(t, reflect.DeepEqual(got, want), "decoded: %+v\nwant:    %+v", got, want)
}

func TestDecodeSpecErrors(t *testing.T) {
	good, err := marshalSpec(testSpec())
	assert.NilError(t, err)
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", "decode the spec: EOF"},
		{"syntax", "{\n  \"process\": [}", "line 2, column 15"},
		{"unknown field", `{"proccess": {}}`, `unknown field "proccess"`},
		{"wrong type", `{"process": {"args": "id"}}`, "line 1, column"},
		{"trailing", string(good) + "{}", "data after the spec"},
		{"no command", `{"process": {"args": []}}`, "no command given"},
		{"NUL in cwd", strings.Replace(string(good), `"/tmp"`, `"/tmp\u0000uid=0"`, 1), "Process.Cwd"},
		{"tty without mount ns", strings.Replace(string(good), `"mount": true`, `"mount": false`, 1), "Process.Terminal: needs a mount namespace"},
		{"no maps", `{"process": {"args": ["id"]}}`, "no uid/gid map"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeSpec(strings.NewReader(tc.in))
			assert.Check(t, is.ErrorContains(err, tc.want))
		})
	}
}

// FuzzDecodeSpec: no input panics, and whatever decodes re-encodes to the
// same spec.
func FuzzDecodeSpec(f *testing.F) {
	good, _ := marshalSpec(testSpec())
	f.Add(good)
	f.Add([]byte(`{"process": {"args": ["id"]}}`))
	f.Add([]byte(`{"process": {"args": ["id"], "uid": 4294967295}, "mapping": {"UIDs": [{"Inner": 0, "Outer": 0, "Count": 4294967295}]}}`))
	f.Add([]byte(`{"hostname": "\u0000", "namespaces": {"uts": true}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSpec(bytes.NewReader(b))
		if err != nil {
			return
		}
		out, err := marshalSpec(s)
		if err != nil {
			t.Fatalf("decoded spec does not encode: %v", err)
		}
		again, err := DecodeSpec(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("encoded spec does not decode: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(s, again) {
			t.Fatalf("round trip changed the spec:\n%+v\n%+v", s, again)
		}
	})
}

// marshalSpec is the JSON form nsbox run --print-spec prints.
func marshalSpec(s *Spec) ([]byte, error) { return json.MarshalIndent(s, "", "  ") }
