package main

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestOneFetchSeam: image_fetch.go alone imports image/fetch (and
// nothing in cmd/nsbox imports go-containerregistry), so that one file
// decides whether nsbox links the fetching code.
func TestOneFetchSeam(t *testing.T) {
	ents, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		n := e.Name()
		if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") || n == "image_fetch.go" {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), n, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/nsbox/nsbox/image/fetch") || strings.Contains(p, "go-containerregistry") || strings.HasPrefix(p, "github.com/docker/") {
				t.Errorf("%s imports %s: only image_fetch.go may reach image fetching", n, p)
			}
		}
	}
}

// TestNoFetchDepsInNsbox: nsbox pulls in its helper program
// (image_fetch.go, cmd/internal/imagepull), so it links no
// go-containerregistry, docker/cli, go-digest or compression code, whose
// package initialisers would otherwise run on every start; the helper
// program built for images does link them (else the test would pass on
// nothing), and the network's helper does not.
func TestNoFetchDepsInNsbox(t *testing.T) {
	bad := []string{"github.com/google/go-containerregistry", "github.com/docker/", "github.com/opencontainers/", "github.com/klauspost/compress", "github.com/sirupsen/logrus", "github.com/nsbox/nsbox/image/fetch"}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		for _, b := range bad {
			if strings.HasPrefix(p, b) {
				t.Errorf("nsbox depends on %s: pulls belong in the helper program", p)
			}
		}
	}
	out, err = exec.Command(goBin, "list", "-deps", "-tags", "nsbox_helper_image", "../nsbox-helper").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "github.com/google/go-containerregistry/pkg/v1/remote\n") {
		t.Errorf("the image helper program should link image/fetch's go-containerregistry: %v", err)
	}
	out, err = exec.Command(goBin, "list", "-deps", "../nsbox-helper").CombinedOutput()
	if err != nil || strings.Contains(string(out), "go-containerregistry") || !strings.Contains(string(out), "gvisor.dev/gvisor/pkg/tcpip/stack\n") {
		t.Errorf("the network's helper program should link gVisor and no go-containerregistry: %v", err)
	}
}
