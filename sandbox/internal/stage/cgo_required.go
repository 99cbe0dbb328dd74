//go:build !cgo

package stage

// The sandbox's setup stage is C, run by an ELF constructor before the Go
// runtime (see stage.go): without cgo there is no stage. This line makes a
// CGO_ENABLED=0 build fail with a name that says what to do.
var _ = nsbox_sandbox_needs_cgo_build_with_CGO_ENABLED_1
