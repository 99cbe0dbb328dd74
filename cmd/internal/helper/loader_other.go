//go:build !nsbox_helper || !amd64

package helper

// loader is empty where make build does not build the loader: the helper
// is then copied into a memfd at each start.
var loader string
