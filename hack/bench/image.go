package main

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The image rows (-image) compare `nsbox run --image` with a plain nsbox
// run and with Docker Engine, and nsbox's pull and unpack with `docker
// pull`, against one image served by a registry this harness starts on
// 127.0.0.1: nothing leaves the machine and both sides fetch the same
// bytes over plain HTTP (Docker allows that for 127.0.0.0/8).
//
// Docker's socket is root's, so these rows run the harness as root with
// -as-user USER: every nsbox command runs as that unprivileged user (its
// credentials set on the child directly, no runuser process in between),
// every docker command as root.

// benchImage describes the image the rows use: busybox-static as the
// base layer, then layers of random (incompressible) files, about 50 MB
// in all, so gzip cannot shrink the transfer.
const (
	imageDataLayers = 4
	imageLayerBytes = 12 << 20
	imageFilesPer   = 3
)

// imageUser is who runs nsbox in the image rows: the -as-user account, or
// nil to run nsbox as the harness's own user.
type imageUser struct {
	cred *syscall.Credential
	home string
}

// lookupImageUser resolves -as-user; "" runs nsbox as the caller.
func lookupImageUser(name string) (*imageUser, error) {
	if name == "" {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("-as-user %s: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &imageUser{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}, nil
}

// nsboxCmd makes the command for nsbox argv as the image rows' user,
// with XDG_DATA_HOME (where nsbox keeps its layer store) set to data.
func (u *imageUser) nsboxCmd(argv []string, data string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+data)
	if u != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred}
		cmd.Env = append(cmd.Env, "HOME="+u.home, "USER=", "LOGNAME=")
	}
	return cmd
}

// chown hands path to the image rows' user (when there is one).
func (u *imageUser) chown(path string) error {
	if u == nil {
		return nil
	}
	return filepath.Walk(path, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(u.cred.Uid), int(u.cred.Gid))
	})
}

// serveRegistry starts go-containerregistry's in-memory registry on a
// free port of 127.0.0.1 and returns its host:port.
func serveRegistry() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("registry: %w", err)
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l) //nolint:errcheck // lives as long as the harness
	return l.Addr().String(), nil
}

// buildBenchImage makes the benchmark image from local files and pushes
// it to ref; it returns the total compressed size of its layers.
func buildBenchImage(ref name.Reference) (int64, error) {
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return 0, fmt.Errorf("the base layer needs busybox-static: %w", err)
	}
	base := tarLayer(func(tw *tar.Writer) error {
		if err := addDir(tw, "bin/"); err != nil {
			return err
		}
		if err := addFile(tw, "bin/busybox", 0o755, busybox); err != nil {
			return err
		}
		for _, applet := range []string{"sh", "true", "ls", "cat"} {
			if err := tw.WriteHeader(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}); err != nil {
				return err
			}
		}
		return nil
	})
	layers := []func() ([]byte, error){base}
	for i := range imageDataLayers {
		layers = append(layers, tarLayer(func(tw *tar.Writer) error {
			dir := fmt.Sprintf("data/%d/", i)
			if err := addDir(tw, "data/"); err != nil {
				return err
			}
			if err := addDir(tw, dir); err != nil {
				return err
			}
			buf := make([]byte, imageLayerBytes/imageFilesPer)
			for f := range imageFilesPer {
				rand.Read(buf)
				if err := addFile(tw, fmt.Sprintf("%sblob%d", dir, f), 0o644, buf); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	var ls []v1.Layer
	var total int64
	for _, build := range layers {
		b, err := build()
		if err != nil {
			return 0, err
		}
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			return 0, err
		}
		n, err := l.Size()
		if err != nil {
			return 0, err
		}
		total += n
		ls = append(ls, l)
	}
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		return 0, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return 0, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config = v1.Config{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return 0, err
	}
	if err := remote.Write(ref, img); err != nil {
		return 0, fmt.Errorf("push %s: %w", ref, err)
	}
	return total, nil
}

// tarLayer returns a function that writes one layer's tar with fill.
func tarLayer(fill func(*tar.Writer) error) func() ([]byte, error) {
	return func() ([]byte, error) {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		if err := fill(tw); err != nil {
			return nil, err
		}
		if err := tw.Close(); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
}

func addDir(tw *tar.Writer, name string) error {
	return tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1700000000, 0)})
}

func addFile(tw *tar.Writer, name string, mode int64, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(data)), ModTime: time.Unix(1700000000, 0)}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// imageRows builds and serves the image, then measures the cached start
// and the pull. Both comparisons come back even when Docker is missing
// (its rows then say why).
func imageRows(cfg *config) []*comparison {
	start := &comparison{Title: "Startup from a cached image: `true`", Unit: "ms"}
	pull := &comparison{Title: "Pull and unpack a ~50 MB image with 5 layers from a registry on 127.0.0.1", Unit: "ms"}
	fail := func(err error) []*comparison {
		for _, c := range []*comparison{start, pull} {
			c.Contenders = []*contender{{Name: "nsbox", Missing: "the image rows could not start: " + err.Error()}}
		}
		return []*comparison{start, pull}
	}
	u, err := lookupImageUser(cfg.asUser)
	if err != nil {
		return fail(err)
	}
	if u != nil {
		u.home = cfg.userHome
	}
	addr, err := serveRegistry()
	if err != nil {
		return fail(err)
	}
	refText := addr + "/bench/busybox-data:1"
	ref, err := name.ParseReference(refText)
	if err != nil {
		return fail(err)
	}
	size, err := buildBenchImage(ref)
	if err != nil {
		return fail(err)
	}
	// The store of the startup row: the user's data directory, filled by
	// one pull before the samples.
	data, err := os.MkdirTemp(cfg.work, "image-data-")
	if err == nil {
		err = u.chown(cfg.work)
	}
	if err != nil {
		return fail(err)
	}
	dockerErr := dockerReady()
	if dockerErr == nil {
		dockerErr = quiet([]string{"docker", "pull", "-q", refText})
	}
	if err := quiet(nil, u.nsboxCmd([]string{cfg.nsbox, "image", "pull", refText}, data)); err != nil {
		return fail(err)
	}

	start.Contenders = []*contender{
		{Name: "nsbox run --image (cached)", Argv: []string{cfg.nsbox, "run", "--image", refText, "--", "true"}},
		{Name: "nsbox run", Argv: []string{cfg.nsbox, "run", "--", "true"}},
		{Name: "docker run --rm", Argv: []string{"docker", "run", "--rm", "--network", "none", refText, "true"}},
		{Name: "nsbox run --image, copy fallback", Argv: []string{"env", "NSBOX_IMAGE_ROOT=copy", cfg.nsbox, "run", "--image", refText, "--", "true"}},
	}
	start.Note = "The first ratio is the image's cost over a plain sandbox (issue 23 asks ≤ 1.3), the second nsbox against Docker Engine (≤ 0.1). " +
		"docker run gets --network none: nsbox run has no network either. " +
		"The copy fallback is what a run costs where the kernel refuses overlayfs (NSBOX_IMAGE_ROOT=copy forces it): the layers copied into a private tree on every run."
	pull.Contenders = []*contender{
		{Name: "nsbox image pull", Argv: []string{cfg.nsbox, "image", "pull", refText}},
		{Name: "docker pull", Argv: []string{"docker", "pull", "-q", refText}},
	}
	pull.Note = fmt.Sprintf("%d layers, %.1f MB compressed (busybox-static and %d layers of random files); each sample starts from an empty store: "+
		"nsbox pulls into a new XDG_DATA_HOME, docker pulls after `docker rmi` of the image. Both fetch over plain HTTP from the same in-process registry (go-containerregistry's pkg/registry).",
		imageDataLayers+1, float64(size)/1e6, imageDataLayers)
	if dockerErr != nil {
		start.Contenders[2].Missing = dockerErr.Error()
		pull.Contenders[1].Missing = dockerErr.Error()
	}
	run := func(k *contender, cmd *exec.Cmd) (float64, error) {
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		t := time.Now()
		if err := cmd.Run(); err != nil {
			return 0, commandError(k.Argv, err, stderr.String())
		}
		return float64(time.Since(t)) / float64(time.Millisecond), nil
	}
	alternate(cfg.rounds, start.Contenders, func(k *contender) (float64, error) {
		if k.Argv[0] == "docker" {
			return wallTime(k.Argv)
		}
		return run(k, u.nsboxCmd(k.Argv, data))
	})
	alternate(max(cfg.rounds/6, 3), pull.Contenders, func(k *contender) (float64, error) {
		if k.Argv[0] == "docker" {
			if err := quiet([]string{"docker", "rmi", "-f", refText}); err != nil {
				return 0, err
			}
			return wallTime(k.Argv)
		}
		fresh, err := os.MkdirTemp(cfg.work, "pull-data-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(fresh)
		if err := u.chown(fresh); err != nil {
			return 0, err
		}
		v, err := run(k, u.nsboxCmd(k.Argv, fresh))
		// The store's files belong to the user (or its subordinate
		// ids): remove it as that user, nsbox's own way.
		quiet(nil, u.nsboxCmd([]string{cfg.nsbox, "image", "rm", refText}, fresh)) //nolint:errcheck // RemoveAll follows
		return v, err
	})
	if dockerErr == nil {
		quiet([]string{"docker", "rmi", "-f", refText}) //nolint:errcheck // tidying up
	}
	return []*comparison{start, pull}
}

// dockerReady says why Docker cannot take part, or nil.
func dockerReady() error {
	if _, err := exec.LookPath("docker"); err != nil {
		return fmt.Errorf("docker is not installed")
	}
	if out, err := exec.Command("docker", "version", "-f", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return fmt.Errorf("docker cannot reach its daemon as uid %d (run the image rows as root: make bench-image): %s", os.Getuid(), lastLine(string(out)))
	}
	return nil
}

// quiet runs argv, or cmd when argv is nil, and returns an error with its
// last stderr line on failure.
func quiet(argv []string, cmd ...*exec.Cmd) error {
	var c *exec.Cmd
	if argv != nil {
		c = exec.Command(argv[0], argv[1:]...)
	} else {
		c = cmd[0]
		argv = c.Args
	}
	out, err := c.CombinedOutput()
	if err != nil {
		return commandError(argv, err, string(out))
	}
	return nil
}
