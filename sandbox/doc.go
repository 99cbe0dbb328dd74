// Package sandbox starts commands in rootless sandboxes: a new user
// namespace, always, and new mount, PID, network, IPC, UTS and cgroup
// namespaces, created without privilege. It is what the nsbox command
// runs, and it is meant to be embedded: a build tool can run each step in
// a sandbox without shelling out.
//
// A sandbox is described by a [Spec] (plain data), started with [Start]
// and waited for with [Sandbox.Wait]. A Spec that names only the command
// runs it as root of a sandbox that maps the caller's own uid and gid, with
// the caller's environment, every namespace of its own and the default
// view of the host (examples/embed is this program, which also prints the
// sandbox's uid_map as the host sees it):
//
//	func main() {
//		sandbox.Init() // first: see "Embedding" below
//		spec := &sandbox.Spec{Process: sandbox.Process{Args: []string{"id", "-u"}, Stdout: os.Stdout, Stderr: os.Stderr}}
//		sb, err := sandbox.Start(context.Background(), spec)
//		if err == nil {
//			err = sb.Wait() // nil, or an *ExitError with the command's status
//		}
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(sandbox.ExitCode(err))
//		}
//	}
//
// What the Spec leaves unset Start plans (see [Start]): the id maps
// ([Spec.Mapping]), the environment ([Process.Env]) and, when nothing of
// the sandbox is said, its namespaces and its view: the host read-only,
// the home and sockets hidden, the working directory writable
// ([HostView]). A Spec that sets Mapping keeps zero [Spec.Namespaces] and
// nil [Spec.Mounts] as they are (every namespace shared, the caller's
// mount tree). [Default] returns what `nsbox run` uses, for editing: the
// same view, the caller's subordinate ids too, no_new_privs:
//
//	spec, err := sandbox.Default("make", "test")
//
// The command's standard streams are io.Reader and io.Writer values: an
// *os.File is handed over as is, anything else (a bytes.Buffer, a network
// connection) is copied through a pipe, and Wait returns only after
// everything the command wrote has been copied. Cancelling the context
// given to Start kills the whole sandbox: PID 1 is killed, and the kernel
// kills every process of its PID namespace with it.
//
// # Embedding
//
// Start re-executes the running binary (/proc/self/exe) as the sandbox's
// setup stage. That stage is C, run by an ELF constructor before the Go
// runtime starts (a process must be single-threaded to create a user
// namespace, and a Go process never is), so it works in any binary that
// imports this package, built with cgo (CGO_ENABLED=1; without cgo the
// package does not compile, and says so).
//
// Since every Start executes the program once more, the C library's own
// start counts: a static glibc program spends about 0.6 ms probing the
// CPU (CPUID, which hypervisors trap) before the stage's first line, a
// static musl one 0.03 ms. nsbox's Makefile links musl where musl-gcc is
// installed (CC=musl-gcc, the kernel's linux/, asm/ and asm-generic/ on
// its include path); a program that embeds this package can be built the
// same way (docs/startup.md has the figures).
//
// Every program that calls Start must call [Init] first in main, as moby's
// reexec.Init. In a healthy binary a re-executed stage never reaches main:
// the constructor takes it over. Init is the guard for the case where it
// did not (a build mode or linker that drops ELF constructors): it stops
// the process with one line on stderr, instead of letting a second copy of
// the program's main run with the sandbox's file descriptors, and Start
// refuses to launch until Init has checked the binary.
//
// # Terminals
//
// With [Process.Terminal] the command gets a pseudo-terminal allocated from
// the sandbox's own devpts in place of the caller's terminal ends, as
// `nsbox run`, `nsbox shell` and `nsbox exec` do whenever one of their
// streams is a terminal; a caller's terminal on Stdin is put in raw mode
// while the sandbox runs and restored by Wait. Without it, a terminal
// given as Stdin, Stdout or Stderr is the command's own file descriptor,
// which any process of the sandbox with the command's uid can reopen
// through /proc: set Terminal whenever one of them is a terminal.
//
// # JSON
//
// A Spec has a JSON form (encoding/json's, read back by [DecodeSpec]): `nsbox run
// --print-spec` prints it and `nsbox run --spec FILE` runs it, so an
// experiment on the command line becomes an API call.
package sandbox
