package stage

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

// protocolKeys reads protocol.h's KEY_* macros: macro name → key.
func protocolKeys(t testing.TB) map[string]string {
	b, err := os.ReadFile("protocol.h")
	assert.NilError(t, err)
	keys := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^#define (KEY_\w+) "([^"]*)"`).FindAllStringSubmatch(string(b), -1) {
		keys[m[1]] = m[2]
	}
	assert.Assert(t, len(keys) > 60, "%v", keys)
	return keys
}

// Every key of protocol.h is written by the Go encoder (as C.KEY_*) and
// read through the C tables by its macro; no C table spells a key.
func TestProtocolKeysUsed(t *testing.T) {
	goSrc, cSrc := "", ""
	for _, glob := range []string{"*.go", "*.c"} {
		files, err := filepath.Glob(glob)
		assert.NilError(t, err)
		for _, f := range files {
			b, err := os.ReadFile(f)
			assert.NilError(t, err)
			switch {
			case strings.HasSuffix(f, "_test.go"), f == "configcheck.go":
			case strings.HasSuffix(f, ".go"):
				goSrc += string(b)
			case f != "config.c":
				cSrc += string(b)
			}
		}
	}
	for macro, key := range protocolKeys(t) {
		assert.Check(t, strings.Contains(goSrc, "C."+macro), "the encoder never writes %s (%q)", macro, key)
		if macro != "KEY_VERSION" {
			assert.Check(t, regexp.MustCompile(`\b`+macro+`\b`).MatchString(cSrc), "no C key table reads %s (%q)", macro, key)
		}
	}
	for _, m := range regexp.MustCompile(`(CFG_(OP_)?KEY\(|\.key = |\.with = |\.needs = )"[^"]*"`).FindAllString(cSrc, -1) {
		t.Errorf("a C key table spells a key instead of using protocol.h's macro: %s", m)
	}
}

// No CONFIG key is written or read outside this package: package
// sandbox hands typed values (Config, Security, TAP) to the encoder here.
// Only code under sandbox/ may import this package (Go's internal rule),
// so that tree is where a record could be spelled; elsewhere "uid=" is
// id(1)'s output and "mount" a flag.
func TestNoKeyLiteralsOutsideStage(t *testing.T) {
	keys := map[string]bool{}
	for _, k := range protocolKeys(t) {
		keys[k] = true
	}
	root, err := filepath.Abs("../..")
	assert.NilError(t, err)
	_, err = os.Stat(filepath.Join(root, "..", "go.mod"))
	assert.NilError(t, err, "sandbox/ is the module's")
	for _, hit := range keyLiterals(t, root, keys) {
		t.Errorf("%s: a CONFIG record spelled outside sandbox/internal/stage; pass a typed value to stage.Config instead", hit)
	}
}

// keyLiterals finds, in the Go files under root outside this package, the
// string literals that spell a record: "key=…" (or "…\x00key=…"), a key
// passed first to a record-writing call (add, flag, AppendRecord, …), a
// key in a [2]string pair, or a key compared with a record's key.
func keyLiterals(t testing.TB, root string, keys map[string]bool) []string {
	self, err := filepath.Abs(".")
	assert.NilError(t, err)
	writer := regexp.MustCompile(`(?i)^(add|flag|.*record.*|emit)$`)
	isRecord := func(s string) bool {
		for _, r := range strings.Split(s, "\x00") {
			if k, _, ok := strings.Cut(r, "="); ok && keys[k] {
				return true
			}
		}
		return false
	}
	var hits []string
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == self || d.Name() == "testdata" || d.Name() == "vendor" || (strings.HasPrefix(d.Name(), ".") && path != root) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		key := func(e ast.Expr) (string, bool) {
			l, ok := e.(*ast.BasicLit)
			if !ok || l.Kind != token.STRING {
				return "", false
			}
			s, err := strconv.Unquote(l.Value)
			return s, err == nil && keys[s]
		}
		hit := func(n ast.Node, s string) { hits = append(hits, fset.Position(n.Pos()).String()+": "+strconv.Quote(s)) }
		pair := func(c *ast.CompositeLit) {
			if len(c.Elts) == 2 {
				if s, ok := key(c.Elts[0]); ok {
					hit(c, s)
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if s, err := strconv.Unquote(n.Value); n.Kind == token.STRING && err == nil && isRecord(s) {
					hit(n, s)
				}
			case *ast.CallExpr:
				name := ""
				switch f := n.Fun.(type) {
				case *ast.Ident:
					name = f.Name
				case *ast.SelectorExpr:
					name = f.Sel.Name
				}
				for _, a := range n.Args {
					if s, ok := key(a); ok && writer.MatchString(name) {
						hit(a, s)
					}
				}
			case *ast.BinaryExpr:
				if n.Op == token.EQL || n.Op == token.NEQ {
					for _, e := range []ast.Expr{n.X, n.Y} {
						if s, ok := key(e); ok {
							hit(e, s)
						}
					}
				}
			case *ast.CompositeLit:
				if a, ok := n.Type.(*ast.ArrayType); ok {
					if inner, ok := a.Elt.(*ast.ArrayType); ok && a.Len == nil && inner.Len != nil {
						for _, e := range n.Elts {
							if c, ok := e.(*ast.CompositeLit); ok {
								pair(c)
							}
						}
					} else if a.Len != nil {
						pair(n)
					}
				}
			}
			return true
		})
		return nil
	})
	assert.NilError(t, err)
	return hits
}
