package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/bwrap"
	"github.com/nsbox/nsbox/cmd/nsbox/internal/state"
	"github.com/nsbox/nsbox/image"
	"github.com/spf13/pflag"
)

// The commands as the shell completions (completion.go) and the man page
// (manpage.go) describe them. Both are generated from what the parser
// itself uses, so they cannot drift from it:
//
//   - the command names, their synopses and one-line summaries come from
//     the usage text that `nsbox help` prints (a command listed there is
//     a command both know);
//   - each command's flags come from the pflag.FlagSet its parser builds
//     (newRunFlags, newExecFlags, …), hidden flags left out;
//   - each command's long help is what `nsbox help COMMAND` prints.
//
// What the usage text cannot say (which flag set, what the words after the
// flags are) is in commandDetails, one row per command; a unit test fails
// when a command of the usage text has no row, or a row no command.

// operandKind is what the words after a command's flags are, for
// completion.
type operandKind string

const (
	operandNone      operandKind = ""          // nothing to offer
	operandCommand   operandKind = "command"   // a program to run (run, shell's args, exec after NAME)
	operandSandbox   operandKind = "sandboxes" // running sandbox names, then (exec) a program
	operandEnded     operandKind = "ended"     // ended detached sandboxes (their kept logs)
	operandCommands  operandKind = "commands"  // nsbox's own commands (help)
	operandShells    operandKind = "shells"    // bash, zsh, fish (completion)
	operandSubs      operandKind = "subs"      // the command's subcommands, then rmWords for rm
	operandFiles     operandKind = "files"     // file names
	operandSignalArg operandKind = "signal"    // NAME, then a signal (kill)
)

// commandDetail is what commandDetails knows of one command.
type commandDetail struct {
	// flags returns the command's flag set as its parser builds it; nil
	// when the command takes no flags.
	flags func() *pflag.FlagSet
	// operands says what follows the flags.
	operands operandKind
	// subs are the subcommands (cache ls|rm|dir).
	subs []string
	// rmWords is the __complete kind offered after the rm subcommand
	// (caches for cache rm, images for image rm).
	rmWords string
	// help returns the long help; nil: what `nsbox help NAME` prints.
	help func() string
}

// commandDetails returns a row for every command of the usage text. A
// function, not a package-level map: that map would be built by package
// main's init at every start, for completion and the man page only.
func commandDetails() map[string]commandDetail {
	return map[string]commandDetail{
		"run":        {flags: func() *pflag.FlagSet { return newRunFlags().fs }, operands: operandCommand},
		"shell":      {flags: func() *pflag.FlagSet { return newRunFlags().fs }},
		"check":      {flags: newCheckFlags},
		"ps":         {flags: newPsFlags},
		"exec":       {flags: func() *pflag.FlagSet { return newExecFlags().fs }, operands: operandSandbox},
		"inspect":    {operands: operandSandbox},
		"kill":       {operands: operandSignalArg},
		"stop":       {flags: newStopFlags, operands: operandSandbox},
		"logs":       {operands: operandSandbox},
		"mount":      {flags: newLiveMountFlags, operands: operandSandbox},
		"umount":     {operands: operandSandbox},
		"cp":         {operands: operandFiles},
		"connect":    {operands: operandSandbox},
		"pause":      {operands: operandSandbox},
		"resume":     {operands: operandSandbox},
		"port":       {operands: operandSubs, subs: []string{"add", "rm", "ls"}},
		"bwrap":      {flags: bwrap.FlagSet, operands: operandCommand, help: func() string { return bwrap.Usage("nsbox bwrap", version) }},
		"rm":         {operands: operandEnded},
		"cache":      {operands: operandSubs, subs: []string{"ls", "rm", "dir"}, rmWords: "caches"},
		"image":      {operands: operandSubs, subs: []string{"ls", "pull", "rm", "prune"}, rmWords: "images"},
		"completion": {operands: operandShells},
		"version":    {},
		"help":       {operands: operandCommands, help: func() string { return helpUsage }},
	}
}

const helpUsage = `Usage: nsbox help [COMMAND]

Prints the overview of nsbox's commands, or what COMMAND does and its flags
(as COMMAND --help does).
`

// cliCommand is one command: from the usage text, with its details.
type cliCommand struct {
	name     string
	synopsis string // "nsbox run [flags] [--] COMMAND [ARG...]"
	summary  string // "run COMMAND in a new sandbox"
	commandDetail
}

// cliCommands returns the commands the usage text lists, in its order.
func cliCommands() []cliCommand {
	var out []cliCommand
	details := commandDetails()
	inUsage := false
	for _, line := range strings.Split(usage, "\n") {
		switch {
		case line == "Usage:":
			inUsage = true
			continue
		case line == "":
			inUsage = false
		}
		synopsis, name, summary, ok := parseUsageLine(line)
		if !inUsage || !ok {
			continue
		}
		out = append(out, cliCommand{name: name, synopsis: strings.TrimSpace(synopsis), summary: summary, commandDetail: details[name]})
	}
	return out
}

// longHelp is the command's help text, as `nsbox help NAME` prints it.
func (c cliCommand) longHelp() string {
	if c.help != nil {
		return c.help()
	}
	var b strings.Builder
	if err := helpCommand([]string{c.name}, &b); err != nil {
		return c.synopsis + "\n\n" + c.summary + "\n"
	}
	return b.String()
}

// visibleFlags are the flags of c the user may type, in the parser's order.
func (c cliCommand) visibleFlags() []*pflag.Flag {
	if c.flags == nil {
		return nil
	}
	var out []*pflag.Flag
	c.flags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			out = append(out, f)
		}
	})
	return out
}

// takesValue reports whether f needs a word after it (--uid 1000), as
// opposed to a switch (--root, --tty) whose value is optional.
func takesValue(f *pflag.Flag) bool { return f.NoOptDefVal == "" }

// newPsFlags are the flags of nsbox ps.
func newPsFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("ps", pflag.ContinueOnError)
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	fs.Bool("json", false, "print the full records (as nsbox inspect) as one JSON array")
	return fs
}

// newStopFlags are the flags of nsbox stop (the other commands on a
// running sandbox share its parser and refuse --timeout).
func newStopFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("stop", pflag.ContinueOnError)
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	fs.Float64("timeout", 10, "SIGKILL the sandbox this many `SECONDS` after SIGTERM")
	return fs
}

// newCheckFlags are the flags of nsbox check.
func newCheckFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("check", pflag.ContinueOnError)
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	fs.Bool("json", false, "print the results as JSON")
	fs.BoolP("help", "h", false, "show this help")
	fs.Bool("probe-overlay", false, "")
	fs.MarkHidden("probe-overlay") // internal: runs inside a user namespace
	return fs
}

// completeCommand is the hidden `nsbox __complete WHAT`: the dynamic words
// the completion scripts offer, one a line. It lists names only: the
// sandboxes' directory names in the state directory (the lock each
// launcher holds says which are live, as nsbox ps finds them; no record
// is read or followed), the kept logs' names, and the cache directory's
// entries. Errors print nothing: a completion has no place to show them.
func completeCommand(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return usageError{"__complete: wrong arguments; fix: nsbox __complete sandboxes|ended|caches|homes|tool-caches|images|commands"}
	}
	var words []string
	switch args[0] {
	case "sandboxes":
		if dir, err := state.Dir(); err == nil {
			names, _ := state.Clean(dir)
			words = validNames(names)
		}
	case "ended":
		if dir, err := state.Dir(); err == nil {
			words = validNames(state.EndedNames(dir))
		}
	case "caches", "homes":
		if root, err := cacheRoot(); err == nil {
			for _, e := range cacheEntries(root) {
				home, isHome := strings.CutPrefix(e.name, "home/")
				switch {
				case args[0] == "caches":
					words = append(words, e.name) // go, home/dev: what cache rm takes
				case isHome:
					words = append(words, home) // dev: what run --home takes
				}
			}
		}
	case "tool-caches":
		for n := range toolCaches() {
			words = append(words, n)
		}
		sort.Strings(words)
	case "images":
		// The stored images' references, as nsbox image ls lists them.
		if dir, err := image.DefaultDir(); err == nil {
			imgs, _ := (&image.Store{Dir: dir}).List()
			for _, img := range imgs {
				words = append(words, img.Ref)
			}
		}
	case "commands":
		for _, c := range cliCommands() {
			words = append(words, c.name)
		}
	default:
		return usageError{fmt.Sprintf("__complete %s: nothing of that kind; fix: nsbox __complete sandboxes|ended|caches|homes|tool-caches|images|commands", args[0])}
	}
	for _, w := range words {
		// A name with a newline or a shell's special characters is not a
		// name nsbox made: never hand it to a shell's completion.
		if safeWord(w) {
			fmt.Fprintln(stdout, w)
		}
	}
	return nil
}

// validNames keeps the names state.ValidName accepts.
func validNames(names []string) []string {
	var out []string
	for _, n := range names {
		if state.ValidName(n) == nil {
			out = append(out, n)
		}
	}
	return out
}

// safeWord reports whether w is made only of letters, digits and . _ - /.
func safeWord(w string) bool {
	if w == "" {
		return false
	}
	for _, c := range w {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-/", c)
		if !ok {
			return false
		}
	}
	return true
}
