package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/fdtree"
	"github.com/nsbox/nsbox/internal/hostdirs"
	"github.com/nsbox/nsbox/sandbox"
)

// The cache directory holds what sandboxes keep from one run to the next
// when asked to: tool caches (--cache) and named homes (--home NAME).
//
//	$XDG_CACHE_HOME/nsbox/          (or ~/.cache/nsbox), mode 0700
//	    cache/go/build, cache/go/mod   GOCACHE and GOMODCACHE
//	    cache/pip, cache/npm           ~/.cache/pip, ~/.npm
//	    cache/cargo/registry, …/git    ~/.cargo/registry, ~/.cargo/git
//	    home/NAME/                     a home bound with --home NAME
//
// A sandbox sees none of it (the real home is hidden) except the
// directories its flags bind.

// toolCaches maps a --cache name to its directories: where they are kept
// under cache/, and where the tool looks for them under the home. A
// function: a package-level map is built at every start of nsbox.
func toolCaches() map[string][][2]string {
	return map[string][][2]string{
		"go":    {{"go/build", ".cache/go-build"}, {"go/mod", "go/pkg/mod"}},
		"pip":   {{"pip", ".cache/pip"}},
		"npm":   {{"npm", ".npm"}},
		"cargo": {{"cargo/registry", ".cargo/registry"}, {"cargo/git", ".cargo/git"}},
	}
}

// cacheRoot is nsbox's per-user cache directory.
func cacheRoot() (string, error) {
	if x := os.Getenv("XDG_CACHE_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "nsbox"), nil
	}
	if h := hostdirs.UserHome(); h != "" {
		return filepath.Join(h, ".cache", "nsbox"), nil
	}
	return "", errors.New("no cache directory: neither XDG_CACHE_HOME nor HOME is an absolute path; fix: set XDG_CACHE_HOME")
}

// makeCacheDir creates dir (under the cache root) and its parents, the
// root private to the user.
func makeCacheDir(root, dir string) error {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("create the cache directory %s: %w", root, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create the cache directory %s: %w", dir, err)
	}
	return nil
}

// isHomeName tells a --home NAME: 1–64 of letters, digits, _ . -, not
// starting with one of the last three. (Not a regexp: package-level
// regexps compile in init(), on every start of nsbox.)
func isHomeName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i, c := range []byte(s) {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

// homeDir resolves --home: a path (anything with a slash, . or ..) must be
// an existing directory; a bare NAME is cache-root/home/NAME, created.
func homeDir(arg string) (string, error) {
	if strings.Contains(arg, "/") || arg == "." || arg == ".." {
		dir, err := filepath.Abs(arg)
		if err != nil {
			return "", fmt.Errorf("--home %s: %w", arg, err)
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return "", fmt.Errorf("--home %s: not a directory; fix: mkdir -p %s, or give a NAME for a home nsbox keeps", arg, dir)
		}
		return dir, nil
	}
	if !isHomeName(arg) {
		return "", usageError{fmt.Sprintf("--home %s: not a name (letters, digits, _ . -) nor a path; fix: e.g. --home dev or --home ./dir", arg)}
	}
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "home", arg)
	if err := makeCacheDir(root, dir); err != nil {
		return "", err
	}
	return dir, lockCacheInUse(dir, "home/"+arg)
}

// cacheMounts binds the named tool caches under home, creating them.
func cacheMounts(names []string, home string) ([]sandbox.Mount, error) {
	if len(names) == 0 {
		return nil, nil
	}
	if home == "" || home == "/" {
		return nil, errors.New("--cache: no home directory to put the caches in; fix: set HOME")
	}
	root, err := cacheRoot()
	if err != nil {
		return nil, err
	}
	var ms []sandbox.Mount
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.TrimSpace(n)
		dirs, ok := toolCaches()[n]
		if !ok {
			return nil, usageError{fmt.Sprintf("--cache %s: unknown cache; fix: use go, pip, npm or cargo", n)}
		}
		if seen[n] {
			continue
		}
		seen[n] = true
		if err := makeCacheDir(root, filepath.Join(root, "cache", n)); err != nil {
			return nil, err
		}
		if err := lockCacheInUse(filepath.Join(root, "cache", n), n); err != nil {
			return nil, err
		}
		for _, d := range dirs {
			src := filepath.Join(root, "cache", d[0])
			if err := makeCacheDir(root, src); err != nil {
				return nil, err
			}
			ms = append(ms, sandbox.Mount{Type: sandbox.MountBind, Source: src, Destination: filepath.Join(home, d[1]), Flag: "--cache " + n})
		}
	}
	return ms, nil
}

const cacheUsage = `Usage: nsbox cache ls
       nsbox cache rm [NAME...]
       nsbox cache dir

What sandboxes keep between runs when asked to, in nsbox's cache directory
($XDG_CACHE_HOME/nsbox, or ~/.cache/nsbox): the tool caches of run --cache
(go, pip, npm, cargo) and the homes of run --home NAME (home/NAME).

  ls    lists them: name, size, host path
  rm    removes the named ones (all of them without a NAME); one that a
        running sandbox uses is refused, naming the sandbox
  dir   prints the cache directory

A sandbox sees only the caches it is given, at the places the tools look
for them (~/.cache/go-build, ~/go/pkg/mod, ~/.cache/pip, ~/.npm,
~/.cargo/registry and ~/.cargo/git under its home). A cache is shared by
every sandbox that asks for it: what one command writes there, the next
one reads.

Examples:
  nsbox run --cache go -- go test ./...   # the second run reuses the build cache
  nsbox run --home dev -- git config --global user.name me   # kept in home/dev
  nsbox cache ls
  nsbox cache rm go home/dev
`

// cacheEntry is one thing nsbox cache ls shows.
type cacheEntry struct{ name, path string }

// cacheEntries lists the caches and homes present under root.
func cacheEntries(root string) []cacheEntry {
	var out []cacheEntry
	for n := range toolCaches() {
		if _, err := os.Stat(filepath.Join(root, "cache", n)); err == nil {
			out = append(out, cacheEntry{n, filepath.Join(root, "cache", n)})
		}
	}
	homes, _ := os.ReadDir(filepath.Join(root, "home"))
	for _, h := range homes {
		out = append(out, cacheEntry{"home/" + h.Name(), filepath.Join(root, "home", h.Name())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// cacheCommand is `nsbox cache`.
func cacheCommand(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, cacheUsage)
		return nil
	}
	root, err := cacheRoot()
	if err != nil {
		return err
	}
	switch args[0] {
	case "dir":
		fmt.Fprintln(stdout, root)
		return nil
	case "ls":
		if len(args) > 1 {
			return usageError{"cache ls: takes no arguments; fix: nsbox cache ls"}
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSIZE\tPATH")
		for _, e := range cacheEntries(root) {
			// By descriptor: a sandbox may be rewriting the cache as it
			// is sized. What could not be read is left out of the size.
			n, _ := fdtree.Size(e.path)
			fmt.Fprintf(tw, "%s\t%s\t%s\n", e.name, humanSize(n), e.path)
		}
		return tw.Flush()
	case "rm":
		entries := cacheEntries(root)
		if len(args) > 1 {
			known := map[string]cacheEntry{}
			for _, e := range entries {
				known[e.name] = e
			}
			entries = entries[:0]
			for _, n := range args[1:] {
				e, ok := known[n]
				if !ok {
					return fmt.Errorf("cache rm %s: no such cache; fix: see nsbox cache ls", n)
				}
				entries = append(entries, e)
			}
		}
		for _, e := range entries {
			if err := removeCache(e); err != nil {
				return err
			}
		}
		return nil
	}
	return usageError{fmt.Sprintf("cache %s: unknown subcommand; fix: nsbox cache ls, rm or dir", args[0])}
}

// humanSize prints n bytes as 12K, 3.4M, 1.2G.
func humanSize(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%dB", n)
	case n < 1<<20:
		return fmt.Sprintf("%.0fK", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
}
