package sandbox

import (
	"go/ast"
	"go/build"
	"go/doc"
	"go/parser"
	"go/token"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
)

// maxAPINames bounds what `go doc ./sandbox` lists at the top level
// (issue 24: the embedder's package reads like os/exec). A name the CLI
// alone needs belongs in internal/ or cmd/nsbox, not here.
const maxAPINames = 25

// TestAPINames counts the package's top-level names as go doc lists
// them: each const or var block, each function not shown under a type,
// each type.
func TestAPINames(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	assert.NilError(t, err)
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range append(pkg.GoFiles, pkg.CgoFiles...) {
		f, err := parser.ParseFile(fset, filepath.Join(pkg.Dir, name), nil, parser.ParseComments)
		assert.NilError(t, err)
		files = append(files, f)
	}
	p, err := doc.NewFromFiles(fset, files, "github.com/nsbox/nsbox/sandbox")
	assert.NilError(t, err)
	var names []string
	for _, v := range append(p.Consts, p.Vars...) {
		names = append(names, v.Names...)
	}
	for _, f := range p.Funcs {
		names = append(names, f.Name)
	}
	for _, ty := range p.Types {
		names = append(names, ty.Name)
	}
	n := len(p.Consts) + len(p.Vars) + len(p.Funcs) + len(p.Types)
	assert.Assert(t, n <= maxAPINames, "go doc ./sandbox lists %d top-level names, at most %d allowed: %v", n, maxAPINames, names)
}
