package sandbox

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"syscall"
)

// message is one message of the stage protocol drawn in stage.h: a header
// of three native-endian 32-bit words (kind, value, payload length) and the
// payload.
type message struct {
	kind    uint32
	value   int32
	payload []byte
}

const headerSize = 12

var msgNames = map[uint32]string{
	msgConfig: "CONFIG", msgUsernsReady: "USERNS_READY", msgMapsDone: "MAPS_DONE",
	msgPID1: "PID1", msgExecOK: "EXEC_OK", msgExecFailed: "EXEC_FAILED",
	msgError: "ERROR", msgStopped: "STOPPED", msgResume: "RESUME",
	msgPtyMaster: "PTY_MASTER",
	msgTAP:       "TAP", msgNetReady: "NET_READY", msgExited: "EXITED",
	msgExecGo:  "EXEC_GO",
	msgHandOff: "HANDOFF", msgHandOffOK: "HANDOFF_READY", msgArm: "ARM",
}

func (m message) String() string {
	name, ok := msgNames[m.kind]
	if !ok {
		name = fmt.Sprintf("message %d", m.kind)
	}
	return fmt.Sprintf("%s(%d)", name, m.value)
}

// writeMessage sends m in a single write, so messages never interleave.
func writeMessage(w io.Writer, kind uint32, value int32, payload []byte) error {
	b := make([]byte, headerSize, headerSize+len(payload))
	binary.NativeEndian.PutUint32(b[0:], kind)
	binary.NativeEndian.PutUint32(b[4:], uint32(value))
	binary.NativeEndian.PutUint32(b[8:], uint32(len(payload)))
	b = append(b, payload...)
	_, err := w.Write(b)
	return err
}

// readMessage reads one message. io.EOF means the other side is gone.
func readMessage(r io.Reader) (message, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		return message{}, err
	}
	return readMessageAfter(r, h)
}

// readMessageAfter reads the payload of the message whose header is h.
func readMessageAfter(r io.Reader, h [headerSize]byte) (message, error) {
	m := message{
		kind:  binary.NativeEndian.Uint32(h[0:]),
		value: int32(binary.NativeEndian.Uint32(h[4:])),
	}
	n := binary.NativeEndian.Uint32(h[8:])
	if n > maxPayload {
		return message{}, fmt.Errorf("stage message %v: payload of %d bytes is too large", m, n)
	}
	m.payload = make([]byte, n)
	if _, err := io.ReadFull(r, m.payload); err != nil {
		return message{}, io.EOF
	}
	return m, nil
}

// expect reads the next message and checks it is of kind want. An ERROR
// message becomes a *SetupError; EOF becomes errStageGone.
func expect(r io.Reader, want uint32) (message, error) {
	m, err := readMessage(r)
	if err != nil {
		if err == io.EOF {
			return m, errStageGone
		}
		return m, err
	}
	switch {
	case m.kind == want:
		return m, nil
	case m.kind == msgError:
		return m, &SetupError{Step: string(m.payload), Err: syscall.Errno(m.value)}
	case m.kind == msgExecFailed:
		return m, &ExecError{Command: string(m.payload), Err: syscall.Errno(m.value)}
	}
	return m, fmt.Errorf("stage protocol: expected %s, got %v", msgNames[want], m)
}

// socketPair returns the launcher's and the stage's ends of a stream
// socketpair, both close-on-exec; os.StartProcess clears the flag on the
// copy it installs as the stage's fd 3.
func socketPair() (parent, child *os.File, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("create the stage socketpair: %w", err)
	}
	return launcherEnd(fds[0]), os.NewFile(uintptr(fds[1]), "nsbox-stage"), nil
}

// launcherEnd wraps the launcher's end of a stage socket. Non-blocking, so
// that it goes through the runtime's poller: a goroutine waiting for the
// stage then parks instead of holding a thread in read(2), and the
// runtime need not start another thread to run the rest.
func launcherEnd(fd int) *os.File {
	syscall.SetNonblock(fd, true)
	return os.NewFile(uintptr(fd), "nsbox-launcher")
}
