// Command embed is the smallest program that embeds package sandbox: it
// runs one command in a sandbox with a Spec that sets nothing but the
// command, so Start plans the rest: the caller mapped onto root, every
// namespace, the default view of the host (package sandbox's doc shows
// the same lines). It prints the command's uid inside and the
// sandbox's uid map as the host sees it, and exits with the command's
// status (125 when the sandbox could not start).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/nsbox/nsbox/sandbox"
)

func main() {
	sandbox.Init() // first: the sandbox's setup stage re-executes this binary
	spec := &sandbox.Spec{Process: sandbox.Process{Args: []string{"id", "-u"}, Stdout: os.Stdout, Stderr: os.Stderr}}
	sb, err := sandbox.Start(context.Background(), spec)
	if err == nil {
		uidMap, _ := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", sb.Pid()))
		fmt.Printf("uid_map: %s", uidMap)
		err = sb.Wait()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(sandbox.ExitCode(err))
	}
}
