//go:build nsbox_helper_image

package main

import (
	"context"

	"github.com/nsbox/nsbox/cmd/internal/imagepull"
	"github.com/nsbox/nsbox/image"
	"github.com/nsbox/nsbox/image/fetch"
)

func init() {
	jobs[imagepull.Job] = job{run: imageJob}
	first = image.Init
}

// imageJob pulls one image into the store nsbox names (package imagepull
// has the exchange), with the ecosystem's credentials.
func imageJob([]string) int {
	return imagepull.Serve(func(ctx context.Context, r image.Ref, s *image.Store) (*image.Image, error) {
		return fetch.Pull(ctx, r, s, fetch.DefaultAuth)
	})
}
