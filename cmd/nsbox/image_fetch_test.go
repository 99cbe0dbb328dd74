package main

import (
	"go/parser"
	"go/token"
	"os"
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
