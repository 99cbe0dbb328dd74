package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

// costlyAtInit are calls that do real work (a parser, a compiler) when a
// package-level variable is initialised with them: in package main that
// work runs before every start, `nsbox run` included, although only a
// few commands use the result. Such a value is built on first use
// (sync.OnceValue) instead.
var costlyAtInit = map[string]bool{
	"regexp.MustCompile": true, "regexp.Compile": true,
	"regexp.MustCompilePOSIX": true, "regexp.CompilePOSIX": true,
	"template.Must": true, "template.New": true,
	"json.Marshal": true, "json.MarshalIndent": true,
}

// TestNoCostlyPackageInit fails when a package-level variable of a
// package of nsbox's own that the binary links is initialised by a call
// in costlyAtInit, or holds a map literal, directly: a package's init
// builds a map literal at every start, for whichever command reads it
// (a function returning the literal, a switch, or a sorted array the
// compiler lays out cost nothing at init). A call inside a function
// literal (a sync.OnceValue) runs on first use and is fine.
func TestNoCostlyPackageInit(t *testing.T) {
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "list", "-deps", "-tags", "netgo,osusergo",
		"-f", `{{if .Module}}{{if eq .Module.Path "github.com/nsbox/nsbox"}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{end}}{{end}}`, ".").CombinedOutput()
	assert.NilError(t, err, string(out))
	files := strings.Fields(string(out))
	assert.Assert(t, len(files) > 50, "go list found %d files", len(files))
	fset := token.NewFileSet()
	var found []string
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		assert.NilError(t, err)
		for _, decl := range f.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.VAR {
				continue
			}
			ast.Inspect(gen, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.FuncLit:
					return false // runs when called, not at init
				case *ast.CompositeLit:
					if _, ok := n.Type.(*ast.MapType); ok {
						found = append(found, fset.Position(n.Pos()).String()+": a map literal")
					}
				case *ast.CallExpr:
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
						if pkg, ok := sel.X.(*ast.Ident); ok && costlyAtInit[pkg.Name+"."+sel.Sel.Name] {
							found = append(found, fset.Position(n.Pos()).String()+": "+pkg.Name+"."+sel.Sel.Name)
						}
					}
				}
				return true
			})
		}
	}
	assert.Assert(t, len(found) == 0, "package-level values built at init (make them functions, or wrap them in sync.OnceValue): %s", strings.Join(found, ", "))
}

// initOnlyDeps are standard packages nsbox does not link, though a line of
// it once brought each in, because their package inits (or the tables
// they keep alive) ran at every start: debug/elf (with debug/dwarf,
// compress/zlib and internal/zstd) for six constants of version.go,
// regexp (which keeps unicode's Categories and Scripts maps, built by
// unicode's init) for four help-text lines (helplines.go).
var initOnlyDeps = []string{"debug/elf", "debug/dwarf", "compress/zlib", "compress/flate", "internal/zstd", "regexp"}

// TestNoInitOnlyDeps fails when nsbox links a package of initOnlyDeps.
func TestNoInitOnlyDeps(t *testing.T) {
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "list", "-deps", "-tags", "netgo,osusergo", ".").CombinedOutput()
	assert.NilError(t, err, string(out))
	deps := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		deps[p] = true
	}
	for _, p := range initOnlyDeps {
		assert.Check(t, !deps[p], "nsbox links %s, whose package init runs at every start", p)
	}
}
