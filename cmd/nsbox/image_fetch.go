package main

import (
	"context"

	"github.com/nsbox/nsbox/image"
	"github.com/nsbox/nsbox/image/fetch"
)

// imageFetcher pulls images: here in this process, with the ecosystem's
// credentials (fetch.DefaultAuth). It is cmd/nsbox's only use of
// image/fetch, and this file its only import of it: put another fetcher
// here (one that runs fetch.Pull in another program sharing the store
// directory) and nsbox links no go-containerregistry at all.
var imageFetcher fetcher = inProcessFetcher{}

// inProcessFetcher runs fetch.Pull in this process.
type inProcessFetcher struct{}

func (inProcessFetcher) Pull(ctx context.Context, r image.Ref, s *image.Store) (*image.Image, error) {
	return fetch.Pull(ctx, r, s, fetch.DefaultAuth)
}
