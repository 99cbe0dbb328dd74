// Package tty is the launcher's side of a sandboxed command's terminal:
// the caller's terminal, never the sandbox's protocol.
//
// Two cases, one type each:
//
//   - [Foreground]: without a pty of the sandbox's own, the command is
//     given the caller's terminal as its controlling terminal when the
//     launcher is in that terminal's foreground. The command's process
//     group then holds the foreground (tcsetpgrp, done by PID 1), and
//     [Foreground.Restore] gives it back to the launcher.
//   - [Relay]: with a pty of the sandbox's own (sandbox.Process.Terminal),
//     PID 1 sends the pty's master to the launcher, and a Relay copies
//     between it and the caller's streams, puts a terminal stdin in raw
//     mode for the sandbox's lifetime and passes the window size on, at
//     start and on every SIGWINCH.
//
// Kernel rules relied on:
//
//   - tcsetpgrp(3) from a background process group stops the caller with
//     SIGTTOU unless SIGTTOU is blocked or ignored; blocking is per thread,
//     so [Foreground.Restore] blocks it on a locked OS thread.
//   - In raw mode the host terminal generates no signals: Ctrl-C, Ctrl-Z
//     and Ctrl-\ arrive as bytes, and the sandbox's own terminal turns them
//     into signals for its foreground job, which is how job control inside
//     works.
//   - TIOCSWINSZ on the master makes the kernel send SIGWINCH to the pty's
//     foreground process group ([Relay.Resize]).
//   - Reading the master fails with EIO once no process holds the slave:
//     that is the end of the output ([Relay.Finish] waits for it).
//   - kill(2) of SIGSTOP may return before the stop reaches the calling
//     thread; only the SIGCONT that ends the stop says the launcher was
//     stopped and continued (both Suspend methods wait for it). The
//     launcher stops itself, or its process group only when it leads it:
//     a group it merely belongs to is its caller's (stopLauncher).
//   - A read of the terminal from a background process group stops the
//     reader with SIGTTIN, or fails with EIO when SIGTTIN is ignored: a
//     [Relay] ignores it, so a launcher started in the background (`&`)
//     keeps running and reads once the shell brings it to the foreground.
//
// Receiving the master from PID 1 (the PTY_MASTER message and its
// SCM_RIGHTS descriptor) is the stage protocol's business and stays in
// package sandbox (pty.go), next to the rest of the protocol.
package tty
