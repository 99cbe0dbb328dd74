package main

import (
	"context"
	"io"
	"os"

	"github.com/nsbox/nsbox/image"
	"github.com/nsbox/nsbox/mapping"
	"github.com/nsbox/nsbox/network"
	"github.com/nsbox/nsbox/sandbox"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// imageFlags is --image of run and shell: the sandbox's root is an OCI
// image's layers, stacked (image/), and the image's configuration gives
// the command, environment, user and working directory.
type imageFlags struct {
	ref  string
	keep string // --keep DIR: the writable layer, kept (image_keep.go)
	img  *image.Image
	proc image.Process
	root sandbox.Mount
}

func (f *imageFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.ref, "image", "", "use OCI image `REF` as the root (registry NAME[:TAG|@DIGEST], oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE), pulled once into nsbox's store; the current directory is bound read-write (see nsbox help image)")
	fs.StringVar(&f.keep, "keep", "", "with --image: keep the writes outside the current directory in `DIR` (created; its upper/ holds them) and start from them when DIR is given again; one DIR per image")
}

// load pulls or finds the image, resolves its configuration for args
// (the command given after --, maybe none) and holds it in the store
// until nsbox exits.
func (f *imageFlags) load(args []string, plan mapping.Plan, stderr io.Writer) error {
	r, err := image.ParseRef(f.ref)
	if err != nil {
		return usageError{"--image: " + err.Error()}
	}
	s, err := imageStore(stderr, plan)
	if err != nil {
		return err
	}
	if f.img, err = s.Get(context.Background(), r); err != nil {
		return err
	}
	if f.proc, err = s.Process(f.img, args); err != nil {
		return err
	}
	held, err := s.Hold(f.img)
	if err != nil {
		return err
	}
	// Held until nsbox, or the supervisor it hands off to, exits.
	heldForLife = append(heldForLife, held.FDs()...)
	f.root = s.RootMount(f.img)
	return nil
}

// imageStore is nsbox's store, with progress on stderr; layers keep their
// owners under plan when it maps subordinate ids (image.IDsFor).
func imageStore(stderr io.Writer, plan mapping.Plan) (*image.Store, error) {
	dir, err := image.DefaultDir()
	if err != nil {
		return nil, err
	}
	s := &image.Store{Dir: dir, Progress: stderr, IDs: image.IDsFor(plan)}
	if f, ok := stderr.(*os.File); ok {
		s.Terminal = term.IsTerminal(int(f.Fd()))
	}
	return s, nil
}

// view is the filesystem of an image run: the image's layers under a
// throwaway writable layer, the base view (/dev, /proc, /tmp), generated
// /etc/hosts, /etc/hostname and /etc/resolv.conf, and the current
// directory bound read-write at its own path (unless the default view
// would refuse it: the home, / or a system directory).
func (f *imageFlags) view(spec *sandbox.Spec, onRoot []sandbox.Mount) {
	spec.Mounts = append([]sandbox.Mount{f.root}, onRoot...)
	spec.Mounts = append(spec.Mounts, sandbox.BaseView()...)
	name := spec.Hostname
	if name == "" {
		name, _ = os.Hostname()
	}
	spec.Mounts = append(spec.Mounts,
		sandbox.Mount{Type: sandbox.MountFile, Destination: "/etc/hosts", Data: network.Hosts(name), Flag: "--image"},
		sandbox.Mount{Type: sandbox.MountFile, Destination: "/etc/hostname", Data: []byte(name + "\n"), Flag: "--image"})
	if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		spec.Mounts = append(spec.Mounts, sandbox.Mount{Type: sandbox.MountFile, Destination: "/etc/resolv.conf", Data: b, Flag: "--image"})
	}
	if cwd := f.cwd(); cwd != "" {
		spec.Mounts = append(spec.Mounts, sandbox.Mount{Type: sandbox.MountBind, Source: cwd, Destination: cwd, Flag: "the current directory " + cwd})
	}
}

// cwd is the current directory when it is bound into an image run, "" if not.
func (f *imageFlags) cwd() string {
	cwd, err := os.Getwd()
	if err != nil {
		return ""
	}
	if ok, _ := sandbox.CwdWritable(cwd, sandbox.UserHome()); !ok {
		return ""
	}
	return cwd
}

// apply puts the image's process into spec: its command, user and
// environment (under --setenv and --unsetenv, which environ applies), and
// the working directory: the current directory when a command was given
// and the current directory is bound (so `cd mod && nsbox run --image
// golang -- go test ./...` works on mod), else the image's WorkingDir.
func (f *imageFlags) apply(rf *runFlags, spec *sandbox.Spec, args []string) {
	spec.Process.Args = f.proc.Args
	if !rf.fs.Changed("uid") {
		spec.Process.UID = f.proc.UID
	}
	if !rf.fs.Changed("gid") {
		spec.Process.GID = f.proc.GID
	}
	if rf.chdir == "" {
		spec.Process.Cwd = f.proc.Cwd
		if cwd := f.cwd(); cwd != "" && len(args) > 0 {
			spec.Process.Cwd = cwd
		}
	}
}

// env is the base environment of an image run: the image's, TERM from
// ours, and container=nsbox.
func (f *imageFlags) env() []string {
	env := append([]string{}, f.proc.Env...)
	if t := os.Getenv("TERM"); t != "" {
		env = append(env, "TERM="+t)
	}
	return sandbox.ContainerEnv(env)
}
