package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/flagwords"
	"github.com/nsbox/nsbox/image"
	"github.com/nsbox/nsbox/mapping"
)

const imageUsage = `Usage: nsbox image ls | pull REF... | rm REF... | rm --keep NAME... | prune

Images for nsbox run --image REF and nsbox shell --image REF, kept in
$XDG_DATA_HOME/nsbox/images (~/.local/share/nsbox/images): each layer
unpacked once, shared by every image that has it.

  ls          list the stored images: reference, id, layers, size; and
              the kept layers (--keep NAME): name, image, size, in use
  pull REF    fetch REF (again) and unpack the layers not stored yet
  rm REF      forget REF and remove the layers no other image uses;
              refused while a sandbox runs it
  rm --keep NAME
              remove the kept layer NAME; refused while a sandbox runs on it
  prune       remove the layers no image uses, the kept layers of images
              no longer stored (and what failed pulls left)

REF is a registry reference (debian:12, ghcr.io/o/i@sha256:…; docker.io
and :latest by default; a multi-arch index gives this host's platform,
credentials from ~/.docker/config.json, $REGISTRY_AUTH_FILE, credential
helpers), oci:DIR[:TAG] (an OCI layout), oci-archive:FILE[:TAG] or
docker-archive:FILE[:TAG] (docker save). A registry image is pulled on
first use and then used from the store; a local one is read on each use.

With --image, the image's Entrypoint and Cmd (Cmd replaced by a command
given after --), Env, User, WorkingDir and StopSignal (what nsbox stop
sends) apply. The User's supplementary groups (the image's /etc/group)
are set where your subordinate ids map them; with a single map (no
subordinate ids) the command has no supplementary groups, as setgroups(2)
is denied there. The current directory is
bound read-write at its own path, and a command given after -- starts
there; the image's own command starts in its WorkingDir. Writes outside
the current directory go to a throwaway layer and vanish on exit, or,
with --keep NAME, to a layer kept in the store, there again on the next
run with --keep NAME (one image per NAME, one sandbox at a time), or
with --keep DIR (a path with a '/', such as ./DIR) to DIR/upper (one
image per DIR; not inside the current directory). Files
keep the image's owners through your subordinate ids; without them, every
file is yours outside and root's inside.

The layers are stacked with overlayfs in the sandbox's user namespace, no
copy. Where the kernel refuses that (no overlayfs, Linux before 5.11, an
AppArmor or SELinux policy, a store on an overlay already nested two deep
as in a sandbox inside a sandbox), nsbox run copies the layers into a
private writable tree for the run instead and says so in one line, with
the cost (the image's size, copied on every run) and the fix: for a
store on a nested overlay, XDG_DATA_HOME on ext4, xfs, btrfs or tmpfs.
Where the store is on overlayfs or the kernel lists no overlay, the
first run tries the mount once (a sandbox that runs nothing) and the
store keeps the answer. NSBOX_IMAGE_ROOT=copy asks for the copy anyway.
--keep needs overlayfs. A copy is removed by the next run that copies,
or by nsbox image prune, once its run has ended.
`

func imageCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, imageUsage)
		return nil
	}
	// The map an image run gets by default: root inside is the caller.
	plan, err := mapping.ForCaller(mapping.Request{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Mode: mapping.Auto, Root: true, Names: flagwords.MapNames})
	if err != nil {
		return err
	}
	s, err := imageStore(stderr, plan)
	if err != nil {
		return err
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "ls", "list":
		if len(rest) > 0 {
			return usageError{"image ls takes no arguments; fix: nsbox image ls"}
		}
		imgs, err := s.List()
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "REFERENCE\tID\tLAYERS\tSIZE\tPULLED")
		for _, img := range imgs {
			fmt.Fprintf(tw, "%s\t%.19s\t%d\t%s\t%s\n", img.Ref, strings.TrimPrefix(img.ID, "sha256:"), len(img.Layers), humanSize(img.Size()), img.Pulled.Local().Format("2006-01-02 15:04"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		return listKept(s, stdout)
	case "pull":
		if len(rest) == 0 {
			return usageError{"image pull: no REF given; fix: nsbox image pull REF"}
		}
		for _, a := range rest {
			r, err := image.ParseRef(a)
			if err != nil {
				return usageError{err.Error()}
			}
			img, err := imageFetcher.Pull(context.Background(), r, s)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s %s\n", img.Ref, img.Digest)
		}
		return nil
	case "rm", "remove":
		if len(rest) == 0 {
			return usageError{"image rm: no REF given; fix: nsbox image rm REF (nsbox image ls lists them)"}
		}
		if rest[0] == "--keep" {
			return removeKept(s, rest[1:], stdout)
		}
		for _, a := range rest {
			r, err := image.ParseRef(a)
			if err != nil {
				return usageError{err.Error()}
			}
			freed, err := s.Remove(r.String())
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "removed %s (%s freed)\n", r, humanSize(freed))
		}
		return nil
	case "prune":
		freed, err := s.Prune()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s freed\n", humanSize(freed))
		return nil
	}
	return usageError{fmt.Sprintf("image: unknown command %q; fix: use ls, pull, rm or prune", args[0])}
}

// listKept prints the kept layers (--keep NAME) after the images, if
// there are any.
func listKept(s *image.Store, stdout io.Writer) error {
	ks, err := s.KeptLayers()
	if err != nil || len(ks) == 0 {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "\nKEPT LAYER\tIMAGE\tSIZE\tIN USE")
	for _, k := range ks {
		use := "no"
		if k.InUse {
			use = "yes"
		}
		fmt.Fprintf(tw, "%s\t%.19s\t%s\t%s\n", k.Name, strings.TrimPrefix(k.Image, "sha256:"), humanSize(k.Size), use)
	}
	return tw.Flush()
}

// removeKept is nsbox image rm --keep NAME....
func removeKept(s *image.Store, names []string, stdout io.Writer) error {
	if len(names) == 0 {
		return usageError{"image rm --keep: no NAME given; fix: nsbox image rm --keep NAME (nsbox image ls lists them)"}
	}
	for _, n := range names {
		freed, err := s.RemoveKept(n)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed kept layer %s (%s freed)\n", n, humanSize(freed))
	}
	return nil
}
