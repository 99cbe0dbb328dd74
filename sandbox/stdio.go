package sandbox

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// stdio holds the command's three standard files and the copying that
// non-file readers and writers need.
type stdio struct {
	files      []*os.File // what the stage gets as fds 0, 1, 2
	childEnds  []*os.File // ours to close once the stage has them
	stdinWrite *os.File   // write end feeding a non-file Stdin
	copies     sync.WaitGroup
	readEnds   []*os.File // our ends of output pipes, closed to cut copying short
	copyOut    bool       // Stdout or Stderr is copied by a goroutine
}

func openStdio(p *Process) (*stdio, error) {
	s := &stdio{files: make([]*os.File, 3)}
	devNull := func() (*os.File, error) {
		f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err == nil {
			s.childEnds = append(s.childEnds, f)
		}
		return f, err
	}
	var err error
	switch in := p.Stdin.(type) {
	case nil:
		s.files[0], err = devNull()
	case *os.File:
		s.files[0] = in
	default:
		var r *os.File
		if r, s.stdinWrite, err = os.Pipe(); err == nil {
			s.files[0] = r
			s.childEnds = append(s.childEnds, r)
			go func() {
				io.Copy(s.stdinWrite, in)
				s.stdinWrite.Close()
			}()
		}
	}
	for i, out := range []io.Writer{p.Stdout, p.Stderr} {
		if err != nil {
			break
		}
		switch w := out.(type) {
		case nil:
			s.files[i+1], err = devNull()
		case *os.File:
			s.files[i+1] = w
		default:
			var r, pw *os.File
			if r, pw, err = os.Pipe(); err == nil {
				s.files[i+1] = pw
				s.childEnds = append(s.childEnds, pw)
				s.readEnds = append(s.readEnds, r)
				s.copies.Add(1)
				s.copyOut = true
				go func() {
					defer s.copies.Done()
					io.Copy(w, r)
					r.Close()
				}()
			}
		}
	}
	if err != nil {
		s.abort()
		return nil, fmt.Errorf("set up standard input and output: %w", err)
	}
	for i, f := range p.ExtraFiles {
		if f == nil {
			s.abort()
			return nil, fmt.Errorf("Process.ExtraFiles[%d] is nil; fix: pass open files only", i)
		}
	}
	s.files = append(s.files, p.ExtraFiles...)
	return s, nil
}

// extra is how many files after stdio the command inherits.
func (s *stdio) extra() int { return len(s.files) - 3 }

// started closes the launcher's copies of the ends the stage now holds.
func (s *stdio) started() {
	for _, f := range s.childEnds {
		f.Close()
	}
	s.childEnds = nil
}

// finish waits until everything the command wrote has been copied out.
func (s *stdio) finish() {
	s.finishWithin(0)
}

// finishWithin is finish that gives up after delay (0: never): it then
// closes the pipes, which ends the copying, and reports false.
func (s *stdio) finishWithin(delay time.Duration) bool {
	s.started()
	done := true
	if delay > 0 {
		copied := make(chan struct{})
		go func() { s.copies.Wait(); close(copied) }()
		select {
		case <-copied:
		case <-time.After(delay):
			done = false
			for _, r := range s.readEnds {
				r.Close()
			}
			<-copied
		}
	} else {
		s.copies.Wait()
	}
	if s.stdinWrite != nil {
		s.stdinWrite.Close()
	}
	return done
}

// copying reports whether the launcher copies one of the streams (a
// Stdin, Stdout or Stderr that is not an *os.File).
func (s *stdio) copying() bool {
	return s.stdinWrite != nil || s.copyOut
}

// abort undoes openStdio when the sandbox did not start.
func (s *stdio) abort() { s.finish() }
