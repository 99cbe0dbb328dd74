package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/nsbox/nsbox/mapping"
)

// Layers keep their files' owners when the store has an id map with the
// caller's subordinate ids (Store.IDs, the map a sandbox run as the
// image's root gets: 0 is the caller, 1… the subordinate ids). Creating a
// file owned by a subordinate id takes CAP_CHOWN in a user namespace that
// maps it, so the unpacker then runs in a helper: this binary again, in a
// new user namespace whose maps Store.IDs writes (newuidmap, newgidmap),
// as podman unpacks. The helper gets the uncompressed layer on stdin
// while this process checks its digest, and it also removes such layers:
// the host user cannot unlink files in directories a subordinate id owns.

// helperEnv names the job of a helper process (Init runs it).
const helperEnv = "NSBOX_IMAGE_HELPER"

// Init runs the helper job when this process is one (see owners.go's
// comment) and exits; otherwise it returns at once. A program that uses a
// Store with IDs calls it first thing in main, after sandbox.Init.
func Init() {
	job := os.Getenv(helperEnv)
	if job == "" {
		return
	}
	os.Unsetenv(helperEnv)
	if err := runHelper(job, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// idsTag marks layer directories unpacked with owners under Store.IDs.
func (s *Store) idsTag() string {
	if s.IDs == nil {
		return ""
	}
	h := sha256.Sum256([]byte(mapping.Format(s.IDs.UIDs) + "/" + mapping.Format(s.IDs.GIDs)))
	return "_" + hex.EncodeToString(h[:4])
}

// IDsFor returns plan if it maps more than the caller's own id (then
// layers keep their owners), nil otherwise.
func IDsFor(plan mapping.Plan) *mapping.Plan {
	n := uint64(0)
	for _, e := range plan.UIDs {
		n += uint64(e.Count)
	}
	if n <= 1 {
		return nil
	}
	return &plan
}

// unpackWithOwners unpacks r into dir in a helper, checking the digest
// here.
func (s *Store) unpackWithOwners(dir string, r io.Reader, diff string, lowers []string) (unpackStats, error) {
	h := sha256.New()
	out, err := s.helper("unpack", append([]string{dir}, lowers...), io.TeeReader(r, h))
	if err != nil {
		return unpackStats{}, err
	}
	var st unpackStats
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("the unpacker's report: %w", err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != diff {
		return st, fmt.Errorf("layer content is %s, not %s as the image's configuration says", got, diff)
	}
	return st, nil
}

// helper runs job in this binary in a new user namespace with the maps of
// Store.IDs, stdin as its input, and returns its output.
func (s *Store) helper(job string, args []string, stdin io.Reader) ([]byte, error) {
	// /proc/self/exe, not os.Executable: in nsbox's helper program, run
	// from a memfd, the link's text names no file that could be executed.
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+job)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, Pdeathsig: syscall.SIGKILL}
	go_, ready, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	cmd.ExtraFiles = []*os.File{go_}
	err = cmd.Start()
	go_.Close()
	if err != nil {
		ready.Close()
		return nil, fmt.Errorf("start the unpacker: %w", err)
	}
	if err := s.IDs.Apply(cmd.Process.Pid); err != nil {
		ready.Close()
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("map the unpacker's ids: %w", err)
	}
	ready.Write([]byte{1})
	ready.Close()
	if err := cmd.Wait(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, errors.New(msg)
	}
	return out.Bytes(), nil
}

// mappedSuffix marks a helper executed again once its maps exist.
const mappedSuffix = "+mapped"

// runHelper is the helper's side: wait for the maps (a byte on fd 3),
// execute this binary again, then do job. The second execve is what
// gives the helper its capabilities in the new namespace: the first ran
// before the maps were written, as an unmapped uid, and execve(2) clears
// the capabilities of a process whose uid is not 0 there.
func runHelper(job string, args []string) error {
	if j, ok := strings.CutSuffix(job, mappedSuffix); ok {
		job = j
	} else {
		ready := os.NewFile(3, "ready")
		var b [1]byte
		if n, _ := ready.Read(b[:]); n != 1 {
			return errors.New("the id maps were not written")
		}
		ready.Close()
		env := append(os.Environ(), helperEnv+"="+job+mappedSuffix)
		return syscall.Exec("/proc/self/exe", append([]string{os.Args[0]}, args...), env)
	}
	switch job {
	case "unpack":
		if len(args) < 1 {
			return errors.New("unpack: no directory")
		}
		st, err := unpackDir(args[0], os.Stdin, "", args[1:], true)
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(st)
	case "merge":
		if len(args) < 1 {
			return errors.New("merge: no directory")
		}
		n, err := mergeLayers(args[0], args[1:], true)
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(n)
	case "remove":
		for _, p := range args {
			if err := removeTree(p); err != nil {
				return fmt.Errorf("remove %s: %w", p, err)
			}
		}
		return nil
	}
	return fmt.Errorf("unknown helper job %q", job)
}
