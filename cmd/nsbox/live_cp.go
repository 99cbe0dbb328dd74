package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/state"
	"github.com/spf13/pflag"
)

const cpUsage = `Usage: nsbox cp SRC NAME:DEST
       nsbox cp NAME:SRC DEST

Copies a file or directory tree into or out of the running sandbox NAME, as
docker cp does: into DEST if it is a directory, else as DEST. Paths inside
are the sandbox's view: a symlink inside leads where it leads there, never
to your files. Modes and times are kept; what is copied out is yours.
Devices, FIFOs and sockets are skipped, with a note. "-" as SRC reads a tar
stream from stdin and unpacks it into the directory DEST inside; "-" as DEST
writes a tar stream of SRC to stdout.

Examples:
  nsbox cp ./src b:/work
  nsbox cp b:/work/out.log .
  nsbox cp b:/work - | tar t
`

const connectUsage = `Usage: nsbox connect NAME [HOST:]PORT

Connects to TCP PORT inside the running sandbox NAME (HOST: 127.0.0.1 by
default, an IP address of the sandbox's network) and relays stdin and
stdout, from the sandbox's own network namespace: it works with --net none,
and nothing is exposed on the host.

Example:
  printf 'GET / HTTP/1.0\r\n\r\n' | nsbox connect web 8080
`

// sandboxPath splits "NAME:PATH" (a sandbox's path, as docker cp writes
// it); a host path (starting with / or ., or without ':' before any '/')
// is not one.
func sandboxPath(arg string) (name, p string, ok bool) {
	if strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, ".") {
		return "", "", false
	}
	name, p, ok = strings.Cut(arg, ":")
	if !ok || strings.Contains(name, "/") || state.ValidName(name) != nil {
		return "", "", false
	}
	return name, p, true
}

func simpleFlags(cmd string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	fs.BoolP("help", "h", false, "show this help")
	return fs
}

func cpCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := simpleFlags("cp")
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("cp: %v; fix: see nsbox help cp", err)}
	}
	if help, _ := fs.GetBool("help"); help {
		fmt.Fprint(stdout, cpUsage)
		return nil
	}
	if fs.NArg() != 2 {
		return usageError{"cp: wrong arguments; fix: nsbox cp SRC NAME:DEST, or nsbox cp NAME:SRC DEST"}
	}
	src, dst := fs.Arg(0), fs.Arg(1)
	sname, spath, sIn := sandboxPath(src)
	dname, dpath, dIn := sandboxPath(dst)
	if sIn == dIn {
		return usageError{"cp: name the sandbox on exactly one side (NAME:PATH); fix: nsbox cp SRC NAME:DEST, or nsbox cp NAME:SRC DEST"}
	}
	name := sname
	if dIn {
		name = dname
	}
	live, sb, err := lookupLive(name, true)
	if err != nil {
		return err
	}
	defer live.Close()
	var skipped []string
	switch {
	case dIn && src == "-":
		skipped, err = sb.CopyTo(stdin, dpath)
	case dIn:
		skipped, err = sb.CopyIn(src, dpath)
	case dst == "-":
		skipped, err = sb.CopyFrom(spath, stdout)
	default:
		skipped, err = sb.CopyOut(spath, dst)
	}
	for _, p := range skipped {
		fmt.Fprintf(stderr, "nsbox: note: %s not copied: not a regular file, directory or symlink\n", p)
	}
	return liveError(name, err)
}

func connectCommand(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := simpleFlags("connect")
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("connect: %v; fix: see nsbox help connect", err)}
	}
	if help, _ := fs.GetBool("help"); help {
		fmt.Fprint(stdout, connectUsage)
		return nil
	}
	if fs.NArg() != 2 {
		return usageError{"connect: wrong arguments; fix: nsbox connect NAME [HOST:]PORT"}
	}
	addr := fs.Arg(1)
	if !strings.Contains(addr, ":") {
		addr = "127.0.0.1:" + addr
	}
	live, sb, err := lookupLive(fs.Arg(0), true)
	if err != nil {
		return err
	}
	defer live.Close()
	conn, err := sb.Dial(context.Background(), "tcp", addr)
	if err != nil {
		return liveError(live.Name, fmt.Errorf("%w; fix: check a server listens on %s inside (nsbox exec %s -- ss -tln)", err, addr, live.Name))
	}
	defer conn.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(conn, stdin)
		if c, ok := conn.(*net.TCPConn); ok {
			c.CloseWrite()
		}
	}()
	_, err = io.Copy(stdout, conn)
	if errors.Is(err, syscall.ECONNRESET) {
		err = nil // a server that closes without reading all: its answer came
	}
	if err != nil {
		return liveError(live.Name, fmt.Errorf("relay %s: %w", addr, err))
	}
	if f, ok := stdin.(*os.File); ok && f == os.Stdin {
		// The relay from stdin may block in read forever: do not wait.
		return nil
	}
	wg.Wait()
	return nil
}
