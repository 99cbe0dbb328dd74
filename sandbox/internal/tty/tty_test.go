package tty

import (
	"bytes"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
)

// lockedBuffer is a bytes.Buffer the relay's goroutine can write while the
// test reads it.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// openPair opens a pty whose slave does not echo, so the master's output
// is only what is written to the slave.
func openPair(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, slave, err := pty.Open()
	assert.NilError(t, err)
	t.Cleanup(func() { slave.Close() })
	tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	assert.NilError(t, err)
	tio.Lflag &^= unix.ECHO
	assert.NilError(t, unix.IoctlSetTermios(int(slave.Fd()), unix.TCSETS, tio))
	return master, slave
}

func TestRelayCopiesBothWaysAndEndsInputWithEOF(t *testing.T) {
	master, slave := openPair(t)
	var out lockedBuffer
	r := Start(master, strings.NewReader("unfinished line"), &out)

	// The command reads the input, then EOF: the relay typed VEOF twice.
	got, err := io.ReadAll(slave)
	assert.NilError(t, err)
	assert.Equal(t, string(got), "unfinished line")

	_, err = slave.Write([]byte("output\n"))
	assert.NilError(t, err)
	slave.Close()
	r.Finish() // returns once the master reads EIO
	assert.Equal(t, out.String(), "output\r\n")
}

func TestRelayResize(t *testing.T) {
	master, slave := openPair(t)
	r := Start(master, nil, nil)
	assert.NilError(t, r.Resize(40, 132))
	ws, err := unix.IoctlGetWinsize(int(slave.Fd()), unix.TIOCGWINSZ)
	assert.NilError(t, err)
	assert.Equal(t, [2]uint16{ws.Row, ws.Col}, [2]uint16{40, 132})
	slave.Close()
	r.Finish()
	assert.ErrorContains(t, r.Resize(1, 1), "closed")
}

func TestInitialSize(t *testing.T) {
	_, slave := openPair(t)
	assert.NilError(t, pty.Setsize(slave, &pty.Winsize{Rows: 33, Cols: 99}))
	pr, pw, err := os.Pipe()
	assert.NilError(t, err)
	defer pr.Close()
	defer pw.Close()

	cases := []struct {
		name       string
		stdin      io.Reader
		stdout     io.Writer
		rows, cols uint16
	}{
		{"no streams", nil, nil, 24, 80},
		{"pipes", pr, pw, 24, 80},
		{"terminal stdin", slave, pw, 33, 99},
		{"terminal stdout", strings.NewReader(""), slave, 33, 99},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rows, cols := InitialSize(tc.stdin, tc.stdout)
			assert.Equal(t, [2]uint16{rows, cols}, [2]uint16{tc.rows, tc.cols})
		})
	}
}

func TestForegroundWithoutTerminal(t *testing.T) {
	pr, pw, err := os.Pipe()
	assert.NilError(t, err)
	defer pr.Close()
	defer pw.Close()
	// A pty that is not the test's controlling terminal has no
	// foreground process group of ours either.
	_, slave := openPair(t)

	for name, fg := range map[string]Foreground{
		"zero":      {},
		"pipes":     ForegroundOf([]*os.File{pr, pw, pw}),
		"other tty": ForegroundOf([]*os.File{slave, slave, slave}),
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, fg.Slot(), -1)
			fd, pgrp := fg.Host()
			assert.Equal(t, [2]int{fd, pgrp}, [2]int{-1, 0})
			fg.Restore()
			// Without a terminal, Suspend must not stop the process.
			assert.Equal(t, fg.Suspend(), false)
		})
	}
}

// A process that still holds the slave once the command is gone (a
// process of the sandbox that opened it through /proc, after nsbox exec)
// must not keep Finish waiting, and loses the terminal: the master closes.
func TestRelayFinishWhileSlaveHeld(t *testing.T) {
	m, slave := openPair(t)
	// Non-blocking, as Start wants it (the stage's master is).
	fd, err := unix.Dup(int(m.Fd()))
	assert.NilError(t, err)
	m.Close()
	assert.NilError(t, unix.SetNonblock(fd, true))
	master := os.NewFile(uintptr(fd), "master")
	var out lockedBuffer
	r := Start(master, nil, &out)
	_, err = slave.Write([]byte("last words\n"))
	assert.NilError(t, err)
	done := make(chan struct{})
	go func() { r.Finish(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Finish waits for a slave that is still held")
	}
	assert.Equal(t, out.String(), "last words\r\n")
	_, err = slave.Write([]byte("more"))
	assert.ErrorIs(t, err, syscall.EIO)
}
