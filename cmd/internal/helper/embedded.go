//go:build nsbox_helper

package helper

import _ "embed"

// embedded and embeddedImage are the helper programs, built by make build
// before nsbox (cmd/internal/helper/nsbox-helper and nsbox-image-helper,
// not in git).
var (
	//go:embed nsbox-helper
	embedded string
	//go:embed nsbox-image-helper
	embeddedImage string
)
