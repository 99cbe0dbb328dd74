package main

import (
	"encoding/json"
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

// TestSeamSwapDropsFetchDeps: with image_fetch.go replaced by a fetcher
// that reaches image/fetch another way (here: none), nsbox links no
// go-containerregistry, docker/cli, go-digest or compression code, whose
// package initialisers would otherwise run on every start.
func TestSeamSwapDropsFetchDeps(t *testing.T) {
	dir := t.TempDir()
	stub := filepath.Join(dir, "image_fetch.go")
	src := "package main\n\nimport (\n\t\"context\"\n\t\"errors\"\n\n\t\"github.com/nsbox/nsbox/image\"\n)\n\n" +
		"var imageFetcher fetcher = elsewhere{}\n\ntype elsewhere struct{}\n\n" +
		"func (elsewhere) Pull(context.Context, image.Ref, *image.Store) (*image.Image, error) {\n\treturn nil, errors.New(\"elsewhere\")\n}\n"
	if err := os.WriteFile(stub, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	seam, err := filepath.Abs("image_fetch.go")
	if err != nil {
		t.Fatal(err)
	}
	ov, _ := json.Marshal(map[string]map[string]string{"Replace": {seam: stub}})
	overlay := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(overlay, ov, 0o644); err != nil {
		t.Fatal(err)
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goBin, "list", "-deps", "-overlay", overlay, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	bad := []string{"github.com/google/go-containerregistry", "github.com/docker/", "github.com/opencontainers/", "github.com/klauspost/compress", "github.com/sirupsen/logrus", "github.com/nsbox/nsbox/image/fetch"}
	for _, p := range strings.Fields(string(out)) {
		for _, b := range bad {
			if strings.HasPrefix(p, b) {
				t.Errorf("with the seam swapped, nsbox still depends on %s", p)
			}
		}
	}
	// And as it is, it does (the test would pass on nothing otherwise).
	out, err = exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "github.com/google/go-containerregistry/pkg/v1/remote\n") {
		t.Errorf("nsbox as built should link image/fetch's go-containerregistry: %v", err)
	}
}
