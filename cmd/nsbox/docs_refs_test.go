package main

// TestDocsNameWhatExists holds the documents to the tree: every file
// path, every identifier and every --flag named in README.md, docs/*.md
// and the comments of the Go and C sources must exist. A rename that
// leaves a document or a comment behind fails here, naming the place.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// Names of other projects that the documents and comments cite, which
// the tree does not hold, and placeholders. Keep it short: each entry is
// a name that is right as written.
var (
	otherFiles = []string{
		// the kernel's and the C library's
		"asm/unistd.h", "fs/namespace.c", "fs/proc_namespace.c", "sched.h", "linux/capability.h",
		"linux/landlock.h", "linux/seccomp.h", "linux/virtio_net.h", "fs/pnode.c",
		// bubblewrap's source and tests (docs/bwrap.md runs them)
		"bubblewrap.c", "test-run.sh", "test-specifying-pidns.sh", "test-specifying-userns.sh", "try-syscall.c", "tests/test-seccomp.py",
		// made by the example it names; placeholders
		"hello.c", "zsysnum_linux_ARCH.go", "a.b.c",
		// the brief's companion that holds the peers' figures (outside the tree)
		"ANCHORS.md",
		// build outputs (make build), never in git
		"cmd/internal/helper/nsbox-helper",
	}
	otherFlags = []string{
		"--config-net", "--tcp-ports", "--udp-ports", "--ipv4-only", // pasta
		"--configure", "--disable-host-loopback", "--ready-fd", // slirp4netns
		"--user", "--pid", "--mount-proc", "--scope", // unshare, systemd-run
		"--privileged", "--security-opt", "--rm", "--device", "--network", // docker
		"--find-links", "--no-index", "--index-url", "--trusted-host", // pip
		"--global", "--no-install-recommends", "--variant", // npm, apt-get, debootstrap
		"--make-rprivate", "--parent-pid", // mount(8), flatpak-spawn
		"--seccomp-bpf",                    // strace
		"--flag", "--long", "--opt", "--x", // placeholders
	}
	otherNames = []string{
		"ErrWouldBlock", "state.Register", // gVisor's tcpip and state
	}
)

func TestDocsNameWhatExists(t *testing.T) {
	t.Chdir("../..") // the repository's top
	tree := readTree(t)
	decls := goDecls(t, tree)
	flags := nsboxFlags(t)
	var bad []string
	var paths, idents, flagsSeen int
	for _, src := range texts(t, tree) {
		for _, ref := range pathRefs.FindAllStringSubmatchIndex(src.text, -1) {
			paths++
			p := src.text[ref[2]:ref[3]]
			if !tree.hasPath(p, src.dir) && !slices.Contains(otherFiles, p) {
				bad = append(bad, fmt.Sprintf("%s: file %s does not exist", src.where(ref[2]), p))
			}
		}
		for _, ref := range src.idents() {
			idents++
			if why := decls.check(ref.name); why != "" && !slices.Contains(otherNames, ref.name) {
				bad = append(bad, fmt.Sprintf("%s: %s %s", src.where(ref.at), ref.name, why))
			}
		}
		for _, ref := range flagRefs.FindAllStringSubmatchIndex(src.text, -1) {
			flagsSeen++
			f := src.text[ref[2]:ref[3]]
			if !flags[f] && !slices.Contains(otherFlags, f) {
				bad = append(bad, fmt.Sprintf("%s: flag %s is no option of nsbox or nsbox bwrap", src.where(ref[2]), f))
			}
		}
	}
	t.Logf("checked %d file paths, %d identifiers, %d flags", paths, idents, flagsSeen)
	if len(bad) > 0 {
		t.Errorf("%d names in documents and comments that do not exist (fix the text, or add another project's name to otherFiles/otherFlags):\n%s",
			len(bad), strings.Join(bad, "\n"))
	}
}

// tree is the repository's files and directories, by slash paths
// relative to its top.
type tree struct {
	paths map[string]bool // files and directories
	base  map[string]bool // file names, for a name written without its folder
	goSrc []string        // .go files
	cSrc  []string        // .c and .h files
}

func readTree(t *testing.T) *tree {
	t.Helper()
	tr := &tree{paths: map[string]bool{}, base: map[string]bool{}}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != "." && (strings.HasPrefix(d.Name(), ".") && d.Name() != ".ci" || p == "bin" || p == "build" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		p = filepath.ToSlash(p)
		tr.paths[p] = true
		if !d.IsDir() {
			tr.base[d.Name()] = true
			switch path.Ext(p) {
			case ".go":
				tr.goSrc = append(tr.goSrc, p)
			case ".c", ".h":
				tr.cSrc = append(tr.cSrc, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// hasPath reports whether p names a file or folder of the tree: from the
// top, from dir (the folder of the text that names it), or, for a bare
// file name, anywhere.
func (tr *tree) hasPath(p, dir string) bool {
	p = strings.TrimSuffix(strings.TrimPrefix(p, "./"), "/")
	if tr.paths[p] || tr.paths[path.Join(dir, p)] {
		return true
	}
	return !strings.Contains(p, "/") && tr.base[p]
}

// A text is a document, or the comments of one source file (the rest
// blanked, so that offsets are the file's).
type text struct {
	file, dir string
	text      string
	markdown  bool
}

func (s text) where(off int) string {
	return fmt.Sprintf("%s:%d", s.file, strings.Count(s.text[:off], "\n")+1)
}

var cComment = regexp.MustCompile(`(?s)/\*.*?\*/|//[^\n]*`)

func texts(t *testing.T, tr *tree) []text {
	t.Helper()
	var out []text
	docs, _ := filepath.Glob("docs/*.md")
	for _, p := range append([]string{"README.md"}, docs...) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, text{file: p, dir: path.Dir(p), text: withoutURLs(string(b)), markdown: true})
	}
	for _, p := range append(slices.Clone(tr.goSrc), tr.cSrc...) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var comments []byte
		if path.Ext(p) == ".go" {
			comments = goComments(t, p, b)
		} else {
			comments = blankExcept(b, cComment.FindAllIndex(b, -1))
		}
		out = append(out, text{file: p, dir: path.Dir(p), text: withoutURLs(string(comments))})
	}
	return out
}

// goComments is src with everything but its comments blanked (newlines
// kept); the cgo preamble is C and counts as comments too.
func goComments(t *testing.T, name string, src []byte) []byte {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var keep [][]int
	for _, g := range f.Comments {
		keep = append(keep, []int{fset.Position(g.Pos()).Offset, fset.Position(g.End()).Offset})
	}
	return blankExcept(src, keep)
}

func blankExcept(src []byte, keep [][]int) []byte {
	out := make([]byte, len(src))
	for i, c := range src {
		if c != '\n' {
			c = ' '
		}
		out[i] = c
	}
	for _, k := range keep {
		copy(out[k[0]:k[1]], src[k[0]:k[1]])
	}
	return out
}

var url = regexp.MustCompile(`[a-z+]+://[^\s)>\]` + "`" + `]+`)

func withoutURLs(s string) string {
	return url.ReplaceAllStringFunc(s, func(u string) string { return strings.Repeat(" ", len(u)) })
}

// pathRefs are file names with an extension of the tree's (a folder path
// before them optional), and folder paths that start at one of the
// tree's top folders.
var pathRefs = regexp.MustCompile(`(?:^|[\s(\x60'"\[,;:])((?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9-][A-Za-z0-9_.-]*\.(?:go|c|h|md|sh|png)|(?:cmd|sandbox|mapping|subid|netstack|netext|image|tests|docs|hack|examples|packaging|contrib|\.ci)/[A-Za-z0-9_./-]*[A-Za-z0-9_])\b`)

// flagRefs are long options.
var flagRefs = regexp.MustCompile(`(?:^|[\s(\x60'"\[,;/])(--[a-z][a-z0-9]*(?:-[a-z0-9]+)*)`)

// nsboxFlags are the long options of nsbox's commands, hidden ones
// included, and bwrap's (the flag sets completion offers: commands.go).
func nsboxFlags(t *testing.T) map[string]bool {
	t.Helper()
	flags := map[string]bool{}
	for _, c := range commandDetails() {
		if c.flags == nil {
			continue
		}
		c.flags().VisitAll(func(f *pflag.Flag) { flags["--"+f.Name] = true })
	}
	return flags
}

// decls are the names the Go and C sources declare.
type decls struct {
	pkgs    map[string]map[string]bool // package name → its top-level names
	members map[string]map[string]bool // type name → fields and methods
	funcs   map[string]bool            // Go functions and methods, C functions and macros
	all     map[string]bool            // every name above
}

var cFunc = regexp.MustCompile(`(?m)(?:^|[\s*])([a-z_][a-z0-9_]*)\(|^#define ([A-Za-z_][A-Za-z0-9_]*)|\b(?:struct|enum) ([a-z_][a-z0-9_]*)`)

func goDecls(t *testing.T, tr *tree) *decls {
	t.Helper()
	d := &decls{pkgs: map[string]map[string]bool{}, members: map[string]map[string]bool{}, funcs: map[string]bool{}, all: map[string]bool{}}
	add := func(m map[string]map[string]bool, k, v string) {
		if m[k] == nil {
			m[k] = map[string]bool{}
		}
		m[k][v] = true
		d.all[v] = true
	}
	for _, p := range tr.goSrc {
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		pkg := f.Name.Name
		for _, decl := range f.Decls {
			switch decl := decl.(type) {
			case *ast.FuncDecl:
				d.funcs[decl.Name.Name] = true
				if decl.Recv == nil {
					add(d.pkgs, pkg, decl.Name.Name)
					continue
				}
				recv := decl.Recv.List[0].Type
				if star, ok := recv.(*ast.StarExpr); ok {
					recv = star.X
				}
				if idx, ok := recv.(*ast.IndexExpr); ok {
					recv = idx.X
				}
				if id, ok := recv.(*ast.Ident); ok {
					add(d.members, id.Name, decl.Name.Name)
				}
			case *ast.GenDecl:
				for _, spec := range decl.Specs {
					switch spec := spec.(type) {
					case *ast.TypeSpec:
						add(d.pkgs, pkg, spec.Name.Name)
						d.typeMembers(spec.Name.Name, spec.Type, add)
					case *ast.ValueSpec:
						for _, n := range spec.Names {
							add(d.pkgs, pkg, n.Name)
						}
					}
				}
			}
		}
	}
	for _, p := range tr.cSrc {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range cFunc.FindAllStringSubmatch(string(b), -1) {
			for _, n := range m[1:] {
				if n != "" {
					d.funcs[n] = true
					d.all[n] = true
				}
			}
		}
	}
	return d
}

func (d *decls) typeMembers(name string, typ ast.Expr, add func(map[string]map[string]bool, string, string)) {
	switch typ := typ.(type) {
	case *ast.StructType:
		for _, f := range typ.Fields.List {
			for _, n := range f.Names {
				add(d.members, name, n.Name)
			}
			if len(f.Names) == 0 { // embedded: its name
				t := f.Type
				if star, ok := t.(*ast.StarExpr); ok {
					t = star.X
				}
				if sel, ok := t.(*ast.SelectorExpr); ok {
					add(d.members, name, sel.Sel.Name)
				} else if id, ok := t.(*ast.Ident); ok {
					add(d.members, name, id.Name)
				}
			}
		}
	case *ast.InterfaceType:
		for _, m := range typ.Methods.List {
			for _, n := range m.Names {
				add(d.members, name, n.Name)
			}
		}
	}
}

// check returns why name (a.b.c or f()) is not declared, or "".
func (d *decls) check(name string) string {
	call := strings.HasSuffix(name, "()")
	parts := strings.Split(strings.TrimSuffix(name, "()"), ".")
	if len(parts) == 1 {
		if call && strings.ToLower(parts[0][:1]) == parts[0][:1] {
			return "" // a C or system call (connect(), umount2()): not checked
		}
		if !d.funcs[parts[0]] && !d.all[parts[0]] {
			return "is declared nowhere"
		}
		return ""
	}
	first, rest := parts[0], parts[1:]
	var scope map[string]bool
	switch {
	case d.pkgs[first] != nil && d.members[first] == nil:
		scope = d.pkgs[first]
	case d.members[first] != nil:
		scope = d.members[first]
	default:
		return "" // another package's name (os.Exit, unix.Setns): not ours to check
	}
	for i, p := range rest {
		if !scope[p] {
			if i == 0 && d.pkgs[first] != nil && d.pkgs[first][p] {
				break
			}
			return fmt.Sprintf("is not declared (%s has no %s)", strings.Join(parts[:i+1], "."), p)
		}
		scope = d.members[p]
		if scope == nil {
			break // a function or a field of another package's type
		}
	}
	return ""
}

// An identRef is a Go or C name that a text refers to.
type identRef struct {
	name string
	at   int
}

var (
	backticked = regexp.MustCompile("`([^`\n]+)`")
	qualified  = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)(\([^()]*\))?$`)
	// In Go comments, doc links and names written bare: an exported
	// CamelCase word or a.B, optionally called.
	docLink  = regexp.MustCompile(`\[((?:[a-z][a-z0-9]*\.)?\*?[A-Z][A-Za-z0-9_]*[a-z][A-Za-z0-9_]*(?:\.[A-Z][A-Za-z0-9_]*)?)\]`)
	bareName = regexp.MustCompile(`(?:^|[\s(,;])((?:[a-z][a-z0-9]*\.)?[A-Z][a-z0-9]+[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*(?:\.[A-Z][A-Za-z0-9]*)?)(?:\(\))?(?:[\s.,;:)'’]|$)`)
	fileExt  = regexp.MustCompile(`\.(?:c|h|go|md|sh|json|png|so|conf|txt|toml|ya?ml|d|[0-9])$`)
)

func (s text) idents() []identRef {
	var out []identRef
	for _, m := range backticked.FindAllStringSubmatchIndex(s.text, -1) {
		q := qualified.FindStringSubmatch(s.text[m[2]:m[3]])
		if q == nil || fileExt.MatchString(q[1]) {
			continue
		}
		switch {
		case q[2] != "":
			out = append(out, identRef{q[1] + "()", m[2]})
		case strings.Contains(q[1], "."):
			out = append(out, identRef{q[1], m[2]})
		}
	}
	if s.markdown || path.Ext(s.file) != ".go" {
		return out
	}
	for _, m := range docLink.FindAllStringSubmatchIndex(s.text, -1) {
		out = append(out, identRef{strings.Replace(s.text[m[2]:m[3]], "*", "", 1), m[2]})
	}
	for _, m := range bareName.FindAllStringSubmatchIndex(s.text, -1) {
		out = append(out, identRef{s.text[m[2]:m[3]], m[2]})
	}
	return out
}
