package image

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestNoFetchDeps: running a stored image must not load what fetching
// needs (go-containerregistry, docker/cli's config and what they pull
// in): their package initialisers run on every start of a program that
// links them. Fetching lives in image/fetch.
func TestNoFetchDeps(t *testing.T) {
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		for _, bad := range []string{"github.com/google/go-containerregistry", "github.com/docker/", "github.com/opencontainers/go-digest", "github.com/klauspost/compress", "github.com/sirupsen/logrus"} {
			if strings.HasPrefix(p, bad) {
				t.Errorf("package image depends on %s", p)
			}
		}
	}
}
