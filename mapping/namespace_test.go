package mapping

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestParseMap(t *testing.T) {
	ext, err := ParseMap("         0       1000          1\n         1     100000      65536\n")
	assert.NilError(t, err)
	assert.DeepEqual(t, ext, []Extent{{0, 1000, 1}, {1, 100000, 65536}})
	_, err = ParseMap("0 1000\n")
	assert.ErrorContains(t, err, `map line "0 1000": want 3 numbers`)
	_, err = ParseMap("0 x 1\n")
	assert.ErrorContains(t, err, `map line "0 x 1": `)
}

func TestNamespace(t *testing.T) {
	var initial Namespace
	h, ok := initial.HostRoot(false)
	assert.Assert(t, ok && h == 0)
	assert.Assert(t, initial.Exists(true, 123456))
	_, miss := initial.missing(false, Extent{0, 0, 1 << 31})
	assert.Assert(t, !miss)

	n := Namespace{Nested: true, UIDs: []Extent{{0, 1000, 1}, {1, 100000, 10}}, GIDs: []Extent{{7, 0, 1}}}
	_, ok = n.HostRoot(false)
	assert.Assert(t, !ok, "nothing here is the parent's uid 0")
	h, ok = n.HostRoot(true)
	assert.Assert(t, ok && h == 7)
	assert.Assert(t, n.Exists(false, 10) && !n.Exists(false, 11))
	id, miss := n.missing(false, Extent{0, 5, 10})
	assert.Assert(t, miss)
	assert.Equal(t, id, uint32(11))
	assert.Equal(t, n.describe(false), `"0 1000 1, 1 100000 10" (/proc/self/uid_map)`)
}

// TestCurrentNamespace reads this process's namespace, then a child's
// inside unshare -r, where uid 0 holds CAP_SETUID but is not real root.
func TestCurrentNamespace(t *testing.T) {
	ns, err := CurrentNamespace()
	assert.NilError(t, err)
	b, err := os.ReadFile("/proc/self/uid_map")
	assert.NilError(t, err)
	whole := strings.Join(strings.Fields(string(b)), " ") == "0 0 4294967295"
	assert.Equal(t, ns.Nested, !whole)

	if os.Getenv("NSBOX_TEST_NAMESPACE_CHILD") == "1" {
		return
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare(1)")
	}
	exe, err := os.Executable()
	assert.NilError(t, err)
	cmd := exec.Command(unshare, "-r", exe, "-test.run", "^TestCurrentNamespaceChild$", "-test.v")
	cmd.Env = append(os.Environ(), "NSBOX_TEST_NAMESPACE_CHILD=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && strings.Contains(string(out), "unshare failed") {
		t.Skipf("no user namespaces here: %s", out)
	}
	assert.NilError(t, err, string(out))
	assert.Assert(t, is.Contains(string(out), "nested=true setid=true"))
}

// TestCurrentNamespaceChild runs inside unshare -r (TestCurrentNamespace).
func TestCurrentNamespaceChild(t *testing.T) {
	if os.Getenv("NSBOX_TEST_NAMESPACE_CHILD") != "1" {
		t.Skip("run by TestCurrentNamespace")
	}
	ns, err := CurrentNamespace()
	assert.NilError(t, err)
	t.Logf("nested=%v setid=%v", ns.Nested, ns.SetID)
	req := Request{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Root: true, Here: ns}
	p, err := NewPlan(req)
	if ns.UIDs[0].Outer == 0 {
		// Run by real root: uid 0 here is host root, mapped only on request.
		assert.Assert(t, errors.Is(err, ErrHostRoot), "got %v", err)
		assert.Error(t, err, "uid map 0:0:1 maps your own uid 0, which is root of the parent user namespace, into the sandbox; fix: add Request.HostRoot if you mean it, or run nsbox as another user")
		req.HostRoot = true
		p, err = NewPlan(req)
	}
	assert.NilError(t, err)
	assert.DeepEqual(t, p.UIDs, []Extent{{0, 0, 1}})
	assert.Assert(t, p.Privileged)
}
