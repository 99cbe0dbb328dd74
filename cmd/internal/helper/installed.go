//go:build !nsbox_helper

package helper

// embedded is empty without the nsbox_helper build tag: the helper is
// then looked for where it is installed.
var embedded string
