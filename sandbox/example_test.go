package sandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/nsbox/nsbox/sandbox"
)

// The smallest Spec: only the command. Start maps the caller's own ids
// (root inside, since Process.UID is 0) and passes the caller's
// environment.
func Example() {
	spec := &sandbox.Spec{Process: sandbox.Process{Args: []string{"id", "-u"}, Stdout: os.Stdout, Stderr: os.Stderr}}
	sb, err := sandbox.Start(context.Background(), spec)
	if err == nil {
		err = sb.Wait()
	}
	fmt.Println(err)
	// Output:
	// 0
	// <nil>
}

// A command in a sandbox of its own: new namespaces, its own PID 1.
func ExampleStart() {
	spec, err := sandbox.Default("sh", "-c", "echo hello from pid $$")
	if err != nil {
		fmt.Println(err)
		return
	}
	spec.Process.Stdout = os.Stdout
	sb, err := sandbox.Start(context.Background(), spec)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sb.Wait())
	// Output:
	// hello from pid 2
	// <nil>
}

// Standard streams need not be files: readers and writers are copied
// through pipes, and Wait returns after the last byte has arrived.
func ExampleProcess_stdio() {
	spec, err := sandbox.Default("tr", "a-z", "A-Z")
	if err != nil {
		fmt.Println(err)
		return
	}
	var out bytes.Buffer
	spec.Process.Stdin = strings.NewReader("shout\n")
	spec.Process.Stdout = &out
	sb, err := sandbox.Start(context.Background(), spec)
	if err == nil {
		err = sb.Wait()
	}
	fmt.Print(out.String(), err, "\n")
	// Output:
	// SHOUT
	// <nil>
}

// The exit status of the command, and what the nsbox command would exit
// with.
func ExampleExitError() {
	spec, err := sandbox.Default("sh", "-c", "exit 3")
	if err != nil {
		fmt.Println(err)
		return
	}
	sb, err := sandbox.Start(context.Background(), spec)
	if err == nil {
		err = sb.Wait()
	}
	fmt.Println(err, sandbox.ExitCode(err))
	// Output:
	// command exited with status 3 3
}

// Cancelling the context kills the whole sandbox, here a command that
// would sleep for a minute. (A deadline, context.WithTimeout, works the
// same; if it passes during Start, Start returns the context's error.)
func ExampleStart_cancel() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	spec, err := sandbox.Default("sleep", "60")
	if err != nil {
		fmt.Println(err)
		return
	}
	sb, err := sandbox.Start(ctx, spec)
	if err != nil {
		fmt.Println(err)
		return
	}
	cancel()
	fmt.Println(sb.Wait())
	// Output:
	// command killed by signal 9 (killed)
}

// A spec round-trips through its JSON form, which `nsbox run --print-spec`
// prints and `nsbox run --spec` reads.
func ExampleDecodeSpec() {
	spec, err := sandbox.Default("make", "test")
	if err != nil {
		fmt.Println(err)
		return
	}
	spec.Hostname = "builder"
	b, _ := json.Marshal(spec)
	again, err := sandbox.DecodeSpec(bytes.NewReader(b))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(again.Process.Args, again.Hostname, again.Namespaces.Net)
	// Output:
	// [make test] builder true
}

// Init is the first statement of main in a program that starts sandboxes:
//
//	func main() {
//		sandbox.Init()
//		…
//	}
//
// In a re-executed stage the C constructor has taken over before main;
// Init stops a process where it did not, instead of running main twice.
func ExampleInit() {
	sandbox.Init()
}

// A command on a terminal of its own, as `nsbox run --tty`: here the
// caller's own terminal (when stdin is one) is put in raw mode until Wait.
func ExampleProcess_terminal() {
	spec, err := sandbox.Default("sh", "-c", "tty; stty size")
	if err != nil {
		fmt.Println(err)
		return
	}
	spec.Process.Terminal = true
	spec.Process.Stdin, spec.Process.Stdout = os.Stdin, os.Stdout
	sb, err := sandbox.Start(context.Background(), spec)
	if err != nil {
		fmt.Println(err)
		return
	}
	sb.Wait()
}
