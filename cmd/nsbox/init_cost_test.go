package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
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

// TestNoCostlyPackageInit fails when a package-level variable of package
// main (or its internal packages) is initialised by a call in
// costlyAtInit, directly: a call inside a function literal (a
// sync.OnceValue) runs on first use and is fine.
func TestNoCostlyPackageInit(t *testing.T) {
	files, err := filepath.Glob("*.go")
	assert.NilError(t, err)
	more, err := filepath.Glob("internal/*/*.go")
	assert.NilError(t, err)
	files = append(files, more...)
	fset := token.NewFileSet()
	var found []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
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
	assert.Assert(t, len(found) == 0, "package-level values built at init (wrap them in sync.OnceValue): %s", strings.Join(found, ", "))
}
