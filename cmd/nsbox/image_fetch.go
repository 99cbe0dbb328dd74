package main

import (
	"context"

	"github.com/nsbox/nsbox/cmd/internal/imagepull"
	"github.com/nsbox/nsbox/image"
)

// imageFetcher pulls images in nsbox's helper program (cmd/nsbox-helper,
// package imagepull), which shares the store's directory: nsbox itself
// links no go-containerregistry, whose packages' init would otherwise run
// on every start. This file is cmd/nsbox's only way to a fetcher.
var imageFetcher fetcher = helperFetcher{}

// helperFetcher runs the pull in the helper program.
type helperFetcher struct{}

func (helperFetcher) Pull(ctx context.Context, r image.Ref, s *image.Store) (*image.Image, error) {
	return imagepull.Pull(ctx, r, s)
}
