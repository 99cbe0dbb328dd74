//go:build !nsbox_helper

package helper

// embedded and embeddedImage are empty without the nsbox_helper build
// tag: the helpers are then looked for where they are installed.
var embedded, embeddedImage string
