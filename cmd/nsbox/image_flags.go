package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/nsbox/nsbox/image"
	"github.com/nsbox/nsbox/internal/containerenv"
	"github.com/nsbox/nsbox/internal/hostdirs"
	"github.com/nsbox/nsbox/mapping"
	"github.com/nsbox/nsbox/network"
	"github.com/nsbox/nsbox/sandbox"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// imageFlags is --image of run and shell: the sandbox's root is an OCI
// image's layers, stacked (image/), and the image's configuration gives
// the command, environment, user and working directory.
type imageFlags struct {
	ref  string
	keep string // --keep NAME|DIR: the writable layer, kept (image_keep.go)
	img  *image.Image
	// store is the image store the image was found in.
	store *image.Store
	flags *pflag.FlagSet // run's, for --detach (keepDir)
	// copyLock marks the private copy of the layers in use (copyIfRefused).
	copyLock *os.File
	// keptLock holds the --keep NAME layer for the run (image_keep.go).
	keptLock *os.File
	proc     image.Process
	root     sandbox.Mount
}

func (f *imageFlags) register(fs *pflag.FlagSet) {
	f.flags = fs
	fs.StringVar(&f.ref, "image", "", "use OCI image `REF` as the root (registry NAME[:TAG|@DIGEST], oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE), pulled once into nsbox's store; the current directory is bound read-write (see nsbox help image)")
	fs.StringVar(&f.keep, "keep", "", "with --image: keep the writes outside the current directory in the layer `NAME` (in the image store; see nsbox image ls) or in DIR (a path with a '/', e.g. ./DIR; its upper/ holds them), and start from them when it is given again; one per image, one sandbox at a time")
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
	f.store = s
	if f.img, err = getImage(s, r); err != nil {
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
	f.root = rootMount(s, f.img)
	return f.copyIfRefused(s, plan, stderr)
}

// copyIfRefused puts the image on a private copy of its layers where the
// kernel refuses overlayfs over them (image.Store.OverlayRefused), or
// where NSBOX_IMAGE_ROOT=copy asks for that, saying what it costs in one
// line.
func (f *imageFlags) copyIfRefused(s *image.Store, plan mapping.Plan, stderr io.Writer) error {
	var why, fix string
	if os.Getenv("NSBOX_IMAGE_ROOT") == "copy" {
		why, fix = "NSBOX_IMAGE_ROOT=copy asks for a copy", "unset NSBOX_IMAGE_ROOT"
	} else if r := s.OverlayRefused(f.img, func() (syscall.Errno, error) { return tryRoot(f.root, plan) }); r != nil {
		why, fix = r.Error(), overlayFix(r)
	} else {
		return nil
	}
	if f.keep != "" {
		return fmt.Errorf("--image %s --keep %s: %s, and a kept layer needs it; fix: %s, or run without --keep", f.img.Ref, f.keep, why, fix)
	}
	if f.detaching() {
		return nil // the supervisor copies
	}
	start := time.Now()
	dir, lock, size, err := s.CopyRoot(f.img)
	if err != nil {
		return err
	}
	f.copyLock = lock
	heldForLife = append(heldForLife, int(lock.Fd()))
	f.root = sandbox.Mount{Type: sandbox.MountBind, Source: dir, Destination: "/", Flag: f.root.Flag}
	fmt.Fprintf(stderr, "nsbox: --image %s: %s: running on a private copy of its layers instead (%s copied in %.1fs, on every run; fix: %s)\n",
		f.img.Ref, why, humanSize(size), time.Since(start).Seconds(), fix)
	return nil
}

// tryRoot starts a sandbox on root, with plan's maps, whose command
// cannot start (it does not exist): the setup's errno mounting root, 0 if
// the mount worked, an error if the sandbox failed otherwise.
func tryRoot(root sandbox.Mount, plan mapping.Plan) (syscall.Errno, error) {
	spec := &sandbox.Spec{
		Process:    sandbox.Process{Args: []string{"/.nsbox-overlay-probe"}, Env: []string{}, UID: plan.UID, GID: plan.GID, NoNewPrivs: true},
		Namespaces: sandbox.AllNamespaces(),
		Mapping:    plan,
		Mounts:     []sandbox.Mount{root},
	}
	sb, err := sandbox.Start(context.Background(), spec)
	if err == nil {
		err = sb.Wait()
	}
	var se *sandbox.SetupError
	if errors.As(err, &se) && strings.Contains(se.Step, root.Flag+": mount overlayfs") {
		return se.Err, nil
	}
	var xe *sandbox.ExecError
	if errors.As(err, &xe) {
		return 0, nil // set up, then the command was not found
	}
	return 0, err
}

// overlayFix is the fix for an overlayfs refusal.
func overlayFix(r *image.OverlayRefusal) string {
	switch {
	case r.Errno == unix.ENODEV:
		return "load overlayfs as root (modprobe overlay)"
	case r.Errno == unix.EPERM || r.Errno == unix.EACCES:
		return "Linux 5.11 or later, without an AppArmor or SELinux policy that denies overlayfs"
	case r.OnOverlay:
		return "set XDG_DATA_HOME to a directory on ext4, xfs, btrfs or tmpfs (the store is on an overlay nested too deep)"
	}
	return "see the kernel log for why it refuses the store's filesystem as an overlayfs lower layer"
}

// fetcher brings an image into the store (image/fetch): the one way
// cmd/nsbox reaches go-containerregistry, through imageFetcher
// (image_fetch.go), so that a run from the store never loads it.
type fetcher interface {
	Pull(ctx context.Context, r image.Ref, s *image.Store) (*image.Image, error)
}

// getImage is the stored image r names, or, if the store may not give it
// (image.Store.Cached), the image pulled now.
func getImage(s *image.Store, r image.Ref) (*image.Image, error) {
	if img, ok := s.Cached(r); ok {
		return img, nil
	}
	return imageFetcher.Pull(context.Background(), r, s)
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
	if ok, _ := hostdirs.CwdWritable(cwd, hostdirs.UserHome()); !ok {
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
	// The User's supplementary groups, where the map lets the sandbox
	// set groups (subordinate ids): with a single map, the command has
	// none of them (setgroups(2) is denied in such a namespace).
	if !rf.fs.Changed("uid") && !rf.fs.Changed("gid") && spec.Mapping.SetgroupsAllowed() {
		for _, g := range f.proc.Groups {
			if spec.Mapping.MapsInnerGID(g) {
				spec.Process.Groups = append(spec.Process.Groups, g)
			}
		}
	}
	rf.state.stopSignal = f.proc.StopSignal
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
	return containerenv.Set(env)
}

// rootMount is the sandbox's root for img: its stored layers as read-only
// overlayfs lower layers under a writable layer on a private tmpfs, which
// goes with the sandbox. Nothing is copied.
func rootMount(s *image.Store, img *image.Image) sandbox.Mount {
	return sandbox.Mount{Type: sandbox.MountTmpOverlay, Destination: "/", Lower: s.LowerDirs(img), Flag: "--image " + img.Ref}
}
