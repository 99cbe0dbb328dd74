// Package image runs OCI images in sandboxes: it keeps a Store of
// unpacked layers and image records, into which package image/fetch
// brings images (from a registry, an OCI layout, an oci-archive or a
// docker-archive: Store.BeginPull, Pull.Finish), and gives what a sandbox.Spec needs to
// run it: Store.LowerDirs, the layers stacked read-only by overlayfs under a
// throwaway writable layer, and Process, the command, environment, user
// and working directory of the image's configuration. The sandbox
// package knows nothing of images; the CLI (nsbox run --image) joins the
// two.
//
// # What the kernel asks of a rootless store
//
// Overlayfs mounts in a user namespace since Linux 5.11, and its lower
// layers may be ordinary directories of the user's. A whiteout is a
// character device 0/0, which an unprivileged process may create since
// Linux 5.8 (vfs_mknod exempts it from CAP_MKNOD), so the unpacker turns
// each .wh.NAME into one. An opaque directory is an xattr, which
// overlayfs reads as trusted.overlay.opaque (host root only) or, with
// the userxattr mount option, user.overlay.opaque: neither is usable by a
// sandbox mount as nsbox makes it. expandOpaque stores an opaque
// directory as whiteouts of the names the lower layers hold there, which
// is why layer directories are keyed by chain id: their lower layers are
// fixed.
//
// A file owned by a subordinate id can only be made by a process with
// CAP_CHOWN in a user namespace that maps that id: owners.go runs the
// unpacker there, with the map a sandbox gets (Store.IDs), and calls
// Init in a re-executed nsbox for it.
//
// # Untrusted input
//
// Layers are hostile input unpacked on the host. unpackLayer never joins
// a name into a path: see its doc comment for the rules, and
// docs/security.md. Everything read from an image (manifests,
// configurations, layers) is checked against its digest by
// go-containerregistry in image/fetch or by unpackLayer (the diff id,
// while streaming).
//
// # What a run loads
//
// This package uses the standard library and x/sys only (refname.go
// parses registry references itself; deps_test.go checks): a run of a
// stored image never initialises go-containerregistry, which only
// image/fetch imports.
//
// # Where overlayfs is refused, and kept layers
//
// OverlayRefused (probe.go) tells, from a try kept in the store, when the
// kernel will not stack the layers; CopyRoot (copyroot.go) then merges
// them into a private writable tree for the run. HoldKept (kept.go) gives
// a run a named writable layer in the store, for the caller's overlay.
//
// # Concurrency
//
// Layers are unpacked under an exclusive flock of layers/KEY.lock into a
// .new-* directory renamed into place when whole; a sandbox holds shared
// flocks on its image's record and layers (Hold), which Remove and Prune
// respect.
package image
