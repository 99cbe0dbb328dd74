// Package nsbox holds nsbox's documents: the README and docs/*.md,
// embedded so that the integration tests run every command they show
// (tests/docs_examples_test.go) from a binary copied anywhere. The code
// lives in cmd/nsbox and the packages beside this file.
package nsbox

import "embed"

// Docs is README.md and docs/*.md, by those paths.
//
//go:embed README.md docs/*.md
var Docs embed.FS
