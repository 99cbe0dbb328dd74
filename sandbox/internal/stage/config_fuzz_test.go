//go:build nsbox_configcheck

package stage

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Fuzz targets driving the stage's C parsers (config.c, mounts.c) through
// configcheck.go. Go's fuzzer sees coverage of Go code only, so these
// mutate blind inside C; what they check is that no input crashes the
// decoder and that whatever it accepts it stores exactly.

// checkAccepted fails unless out (what the C side wrote back) holds the
// same records as in, and decodes again to itself.
func checkAccepted(t *testing.T, in, out []byte, areas uint, versioned bool) {
	t.Helper()
	wantTop, wantOps := canonical(in)
	gotTop, gotOps := canonical(out)
	if !slices.Equal(gotTop, wantTop) || !slices.EqualFunc(gotOps, wantOps, slices.Equal) {
		t.Fatalf("decoded records differ:\n in: %q %q\nout: %q %q", wantTop, wantOps, gotTop, gotOps)
	}
	again, err := decodeConfigC(out, areas, versioned)
	if err != nil {
		t.Fatalf("the written-back records are refused: %v\n%q", err, out)
	}
	if !bytes.Equal(again, out) {
		t.Fatalf("writing back is not stable:\n%q\n%q", out, again)
	}
}

func checkRefused(t *testing.T, err error) {
	t.Helper()
	if !strings.HasPrefix(err.Error(), `config record "`) {
		t.Fatalf("error does not name the record: %v", err)
	}
}

func FuzzConfigRecords(f *testing.F) {
	for name, c := range configCases(f) {
		if name != "Default" { // the caller's whole environment: too big a seed
			f.Add(c.Encode())
		}
	}
	f.Add(baseConfig())
	f.Add(append(baseConfig(), "uid=1\x00lo=2\x00x\x00"...))
	f.Add([]byte("v=2\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := decodeConfigC(b, configAreaAll, true)
		if err != nil {
			checkRefused(t, err)
			return
		}
		checkAccepted(t, b, out, configAreaAll, true)
	})
}

// FuzzMountRecords appends the fuzzed records to a message that asks for
// a new root, so every input reaches mounts.c's keys.
func FuzzMountRecords(f *testing.F) {
	prefix := append(baseConfig(), "new-root=1\x00owner-uid=1000\x00owner-gid=-1\x00"...)
	c := Config{TTY: -1, NewRoot: true, Ops: everyMount()}
	for _, r := range bytes.SplitAfter(c.Encode(), []byte{0}) {
		if bytes.HasPrefix(r, []byte("mount=")) {
			f.Add(r)
		}
	}
	var all []byte
	for i := range c.Ops {
		c.Ops[i].encode(func(k, v string) { all = appendRecord(all, k, v) })
	}
	f.Add(all)
	f.Add([]byte("mount=bind\x00mount-dst=/\x00mount-flags=7\x00mount-mode=0\x00mount-what=x\x00mount-lower=a\x00mount-lower=b\x00"))
	f.Add([]byte("mount=file\x00mount-data=00ff\x00mount-dst=/f\x00mount-flags=0\x00mount-mode=420\x00mount-what=f\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		msg := append(slices.Clip(prefix), b...)
		out, err := decodeConfigC(msg, configAreaAll, true)
		if err != nil {
			checkRefused(t, err)
			return
		}
		checkAccepted(t, msg, out, configAreaAll, true)
	})
}

func FuzzHexDecode(f *testing.F) {
	for _, s := range []string{"", "00", "0a1b2c3d4e5f", "ff", "FF", "abc", "g0", "0\x0000", "7f80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if i := strings.IndexByte(s, 0); i >= 0 {
			s = s[:i] // a C string ends at its first NUL
		}
		got, ok := hexDecodeC(s)
		want, err := hex.DecodeString(s)
		lower := strings.ToLower(s) == s
		if ok != (err == nil && lower) {
			t.Fatalf("hex_decode(%q): ok %v, want %v (encoding/hex: %v)", s, ok, err == nil && lower, err)
		}
		if ok && !bytes.Equal(got, want) {
			t.Fatalf("hex_decode(%q) = %x, want %x", s, got, want)
		}
	})
}

// unescapeMountinfo is mountinfo_unescape in Go: "\ooo" with three octal
// digits of one byte (\001 to \377) becomes that byte, anything else
// stays (a path holds no NUL).
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] >= '0' && s[i+1] <= '3' &&
			s[i+2] >= '0' && s[i+2] <= '7' && s[i+3] >= '0' && s[i+3] <= '7' && s[i+1:i+4] != "000" {
			b.WriteByte((s[i+1]-'0')*64 + (s[i+2]-'0')*8 + (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// escapeMountinfo is the kernel's mangling of a mount point in
// /proc/self/mountinfo (fs/proc_namespace.c: seq_escape with " \t\n\\").
func escapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(" \t\n\\", s[i]) >= 0 {
			fmt.Fprintf(&b, "\\%03o", s[i])
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func FuzzMountinfoUnescape(f *testing.F) {
	for _, s := range []string{"/a\\040b", "/tab\\011x\\012\\134", "\\", "\\0", "\\04", "\\400", "\\777", "\\0a1", "/plain", "\\\\040"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if i := strings.IndexByte(s, 0); i >= 0 {
			s = s[:i]
		}
		if got, want := mountinfoUnescapeC(s), unescapeMountinfo(s); got != want {
			t.Fatalf("mountinfo_unescape(%q) = %q, want %q", s, got, want)
		}
		if got := mountinfoUnescapeC(escapeMountinfo(s)); got != s {
			t.Fatalf("mountinfo_unescape(escape(%q)) = %q", s, got)
		}
	})
}

func TestMountinfoUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`:              "/a b",
		`/t\011\012\134x`:      "/t\t\n\\x",
		`/trailing\04`:         `/trailing\04`,
		`/not\08octal`:         `/not\08octal`,
		`/too\400big`:          `/too\400big`,
		`/two\134\040`:         "/two\\ ",
		`/literal\\040`:        "/literal\\ ",
		"/unicode/\u00e9\\040": "/unicode/\u00e9 ",
	} {
		if got := mountinfoUnescapeC(in); got != want {
			t.Errorf("mountinfo_unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
