// Package imagepull runs image pulls in nsbox's helper program
// (cmd/nsbox-helper), so that nsbox itself links no go-containerregistry:
// its packages' init (and docker/cli's configuration, net/http, crypto/tls)
// would otherwise run on every start, also of runs that use no image.
//
// The exchange is one JSON Request on the helper's stdin and one JSON
// Reply on its stdout; the helper's stderr is the caller's, for the pull's
// progress. The helper writes only into the store's directory, which
// both sides share: the caller reads the image's record from the store
// once the helper has finished.
package imagepull

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/nsbox/nsbox/cmd/internal/helper"
	"github.com/nsbox/nsbox/image"
	"github.com/nsbox/nsbox/mapping"
)

// Job is the helper's job name for a pull.
const Job = helper.ImageJobPrefix + "pull"

// Protocol is the version of Request and Reply: a helper installed from
// another build refuses a request it does not speak.
const Protocol = 1

// MaxReply bounds what the caller reads of the helper's reply.
const MaxReply = 64 << 10

// Request is what the caller sends: the reference, and the store the
// image goes into (image.Store's fields, Progress as a flag: the helper's
// stderr is the caller's).
type Request struct {
	Protocol int           `json:"protocol"`
	Ref      string        `json:"ref"`
	Dir      string        `json:"dir"`
	Progress bool          `json:"progress"`
	Terminal bool          `json:"terminal"`
	IDs      *mapping.Plan `json:"ids,omitempty"`
}

// Reply is the helper's answer: "" when the image is in the store.
type Reply struct {
	Error string `json:"error,omitempty"`
}

// Pull pulls r into s in the helper program and returns the stored image.
// Cancelling ctx kills the helper.
func Pull(ctx context.Context, r image.Ref, s *image.Store) (*image.Image, error) {
	req, err := json.Marshal(Request{Protocol: Protocol, Ref: r.String(), Dir: s.Dir, Progress: s.Progress != nil, Terminal: s.Terminal, IDs: s.IDs})
	if err != nil {
		return nil, err
	}
	cmd, exe, err := helper.Command(Job)
	if err != nil {
		return nil, fmt.Errorf("image %s: start the helper program: %w", r, err)
	}
	var out bytes.Buffer
	cmd.Stdin = bytes.NewReader(req)
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if s.Progress != nil {
		cmd.Stderr = s.Progress
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	if exe != nil {
		exe.Close()
	}
	for _, f := range cmd.ExtraFiles {
		f.Close() // the helper's fd 3 (helper.Command)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: start the helper program: %w", r, err)
	}
	stop := context.AfterFunc(ctx, func() { cmd.Process.Kill() })
	werr := cmd.Wait()
	stop()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("image %s: %w", r, ctx.Err())
	}
	var rep Reply
	if b := out.Bytes(); len(b) > MaxReply || json.Unmarshal(b, &rep) != nil {
		return nil, fmt.Errorf("image %s: the helper program ended without a reply (%v)", r, werr)
	}
	if rep.Error != "" {
		return nil, errors.New(rep.Error)
	}
	img, ok := s.Cached(r)
	if !ok {
		return nil, fmt.Errorf("image %s: the helper program pulled it, but the store does not give it", r)
	}
	return img, nil
}

// Serve is the helper's side: it reads a Request from stdin, pulls with
// pull, writes the Reply to stdout and returns the exit status.
func Serve(pull func(ctx context.Context, r image.Ref, s *image.Store) (*image.Image, error)) int {
	b, err := io.ReadAll(io.LimitReader(os.Stdin, MaxReply+1))
	var req Request
	switch {
	case err != nil || len(b) > MaxReply:
		return reply(fmt.Sprintf("image helper: read the request: %v (%d bytes)", err, len(b)))
	case json.Unmarshal(b, &req) != nil:
		return reply("image helper: the request is not JSON")
	case req.Protocol != Protocol:
		return reply(fmt.Sprintf("image helper: protocol %d, this helper speaks %d; fix: install nsbox and nsbox-helper from the same build", req.Protocol, Protocol))
	}
	r, err := image.ParseRef(req.Ref)
	if err != nil {
		return reply(err.Error())
	}
	s := &image.Store{Dir: req.Dir, Terminal: req.Terminal, IDs: req.IDs}
	if req.Progress {
		s.Progress = os.Stderr
	}
	if _, err := pull(context.Background(), r, s); err != nil {
		return reply(err.Error())
	}
	return reply("")
}

func reply(msg string) int {
	b, _ := json.Marshal(Reply{Error: msg})
	os.Stdout.Write(b)
	if msg != "" {
		return 1
	}
	return 0
}
