package bwrap

import (
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/pflag"
)

// FlagSet describes bwrap's options (arity, the table its own
// parser reads, with the words of optionHelp) as a flag set, for
// completion only: bubblewrap's options take several words each, which
// pflag cannot parse.
func FlagSet() *pflag.FlagSet {
	help := map[string][2]string{} // --bind: {"SRC DEST", "Bind mount …"}
	for _, line := range strings.Split(optionHelp, "\n") {
		if m := helpLine().FindStringSubmatch(line); m != nil {
			help[m[1]] = [2]string{m[2], m[3]}
		}
	}
	fs := pflag.NewFlagSet("bwrap", pflag.ContinueOnError)
	names := make([]string, 0, len(arity))
	for n := range arity {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		h := help[n]
		if arity[n] == 0 {
			fs.Bool(strings.TrimPrefix(n, "--"), false, h[1])
			continue
		}
		args := h[0]
		if args == "" {
			args = "ARG"
		}
		fs.String(strings.TrimPrefix(n, "--"), "", h[1]+" (takes `"+strings.TrimSpace(args)+"`)")
	}
	return fs
}

// helpLine is an option's line of optionHelp: the option, its
// arguments, two or more spaces (or one, where the words fill the
// column), the help.
var helpLine = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^    (--[a-z0-9-]+)((?: [A-Z][A-Z0-9_]*)*)\s+(\S.*)$`)
})
