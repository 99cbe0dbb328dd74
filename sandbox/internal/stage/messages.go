package stage

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Message is one message of the stage protocol drawn in stage.h: a header
// of three native-endian 32-bit words (kind, value, payload length) and the
// payload.
type Message struct {
	Kind    uint32 // Msg*
	Value   int32
	Payload []byte
}

// HeaderSize is the size of a message's header.
const HeaderSize = 12

// KindName is the name stage.h gives a message kind. A switch, not a
// map: a package-level map is built at every start of nsbox.
func KindName(kind uint32) string {
	switch kind {
	case MsgConfig:
		return "CONFIG"
	case MsgUsernsReady:
		return "USERNS_READY"
	case MsgMapsDone:
		return "MAPS_DONE"
	case MsgPID1:
		return "PID1"
	case MsgExecOK:
		return "EXEC_OK"
	case MsgExecFailed:
		return "EXEC_FAILED"
	case MsgError:
		return "ERROR"
	case MsgStopped:
		return "STOPPED"
	case MsgResume:
		return "RESUME"
	case MsgPtyMaster:
		return "PTY_MASTER"
	case MsgTAP:
		return "TAP"
	case MsgNetReady:
		return "NET_READY"
	case MsgExited:
		return "EXITED"
	case MsgExecGo:
		return "EXEC_GO"
	case MsgHandOff:
		return "HANDOFF"
	case MsgHandOffOK:
		return "HANDOFF_READY"
	case MsgArm:
		return "ARM"
	case MsgCommandReady:
		return "COMMAND_READY"
	case MsgUnshare:
		return "UNSHARE"
	case MsgLiveDone:
		return "LIVE_DONE"
	}
	return fmt.Sprintf("message %d", kind)
}

func (m Message) String() string {
	return fmt.Sprintf("%s(%d)", KindName(m.Kind), m.Value)
}

// Error is an ERROR message (Kind MsgError: a setup step failed, Text
// names it) or an EXEC_FAILED one (Kind MsgExecFailed: Text is the
// command) read where another message was expected. Package sandbox turns
// it into its SetupError or ExecError.
type Error struct {
	Kind  uint32
	Text  string
	Errno syscall.Errno
}

func (e *Error) Error() string {
	return fmt.Sprintf("sandbox stage: %s: %s: %v", KindName(e.Kind), e.Text, e.Errno)
}

// AsError returns the *Error that m is, or nil when m is neither ERROR nor
// EXEC_FAILED.
func (m Message) AsError() *Error {
	if m.Kind != MsgError && m.Kind != MsgExecFailed {
		return nil
	}
	return &Error{Kind: m.Kind, Text: string(m.Payload), Errno: syscall.Errno(m.Value)}
}

// WriteMessage sends a message in a single write, so messages never
// interleave.
func WriteMessage(w io.Writer, kind uint32, value int32, payload []byte) error {
	b := make([]byte, HeaderSize, HeaderSize+len(payload))
	binary.NativeEndian.PutUint32(b[0:], kind)
	binary.NativeEndian.PutUint32(b[4:], uint32(value))
	binary.NativeEndian.PutUint32(b[8:], uint32(len(payload)))
	b = append(b, payload...)
	_, err := w.Write(b)
	return err
}

// ReadMessage reads one message. io.EOF means the other side is gone.
func ReadMessage(r io.Reader) (Message, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		return Message{}, err
	}
	return ReadMessageAfter(r, h)
}

// ReadMessageAfter reads the payload of the message whose header is h.
func ReadMessageAfter(r io.Reader, h [HeaderSize]byte) (Message, error) {
	m := Message{
		Kind:  binary.NativeEndian.Uint32(h[0:]),
		Value: int32(binary.NativeEndian.Uint32(h[4:])),
	}
	n := binary.NativeEndian.Uint32(h[8:])
	if n > MaxPayload {
		return Message{}, fmt.Errorf("stage message %v: payload of %d bytes is too large", m, n)
	}
	m.Payload = make([]byte, n)
	if _, err := io.ReadFull(r, m.Payload); err != nil {
		return Message{}, io.EOF
	}
	return m, nil
}

// Expect reads the next message and checks it is of kind want. An ERROR
// or EXEC_FAILED message in its place is returned as an *Error; io.EOF
// means the other side is gone without saying why.
func Expect(r io.Reader, want uint32) (Message, error) {
	m, err := ReadMessage(r)
	if err != nil {
		return m, err
	}
	if m.Kind == want {
		return m, nil
	}
	if e := m.AsError(); e != nil {
		return m, e
	}
	return m, fmt.Errorf("stage protocol: expected %s, got %v", KindName(want), m)
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
