//go:build nsbox_helper

package helper

import _ "embed"

// loader is the helper's loader program (loader/loader.c), built by make
// build for x86-64 only.
//
//go:embed nsbox-helper-loader
var loader string
