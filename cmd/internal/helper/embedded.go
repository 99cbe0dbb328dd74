//go:build nsbox_helper

package helper

import _ "embed"

// embedded is the helper program, built by make build before nsbox
// (cmd/internal/helper/nsbox-helper, not in git).
//
//go:embed nsbox-helper
var embedded string
