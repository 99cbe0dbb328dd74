package image

import (
	"errors"
	"net/url"
	"strings"
)

// Registry references are parsed here, with the standard library only,
// so that a run from the store never loads go-containerregistry (its
// package initialisers cost every nsbox start; image/fetch holds it).
// The rules are go-containerregistry's name.ParseReference, weak
// validation, which image/fetch's fuzz test checks this against: the
// canonical name of a reference is the store's key for it, so the two
// must agree on every input.

const (
	// defaultRegistry is Docker Hub's, which docker.io also names.
	defaultRegistry = "index.docker.io"
	repoChars       = "abcdefghijklmnopqrstuvwxyz0123456789_-./"
	tagChars        = "abcdefghijklmnopqrstuvwxyz0123456789_-.ABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

// CanonicalName returns a registry reference's canonical form:
// REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@DIGEST, docker.io and
// its library/ namespace and the tag latest filled in; a tag given with
// a digest is dropped, as the digest alone names the image.
func CanonicalName(s string) (string, error) {
	if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
		return "", errors.New("a reference holds no URL scheme (http:// or https://)")
	}
	if n, err := tagName(s); err == nil {
		return n, nil
	}
	base, dig, ok := strings.Cut(s, "@")
	if !ok || strings.Contains(dig, "@") {
		return "", errors.New("not NAME[:TAG] or NAME@DIGEST")
	}
	if !validDigest(dig) {
		return "", errors.New("digest " + dig + " is not ALGORITHM:HEX (sha256, sha384 or sha512)")
	}
	if repo, _, err := splitTag(base); err == nil {
		base = repo
	}
	repo, err := repositoryName(base)
	if err != nil {
		return "", err
	}
	return repo + "@" + dig, nil
}

// tagName is the canonical form of NAME[:TAG].
func tagName(s string) (string, error) {
	repo, tag, err := splitTag(s)
	if err != nil {
		return "", err
	}
	return repo + ":" + tag, nil
}

// splitTag splits NAME[:TAG] into the canonical repository name and the
// tag (latest if none). A ':' followed by a '/' is a registry's port.
func splitTag(s string) (repo, tag string, err error) {
	base := s
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.Contains(s[i+1:], "/") {
		base, tag = s[:i], s[i+1:]
		if tag == "" {
			return "", "", errors.New("no tag after the ':'")
		}
	}
	if tag != "" && !onlyChars(tag, tagChars, 1, 128) {
		return "", "", errors.New("tag " + tag + " is not 1 to 128 of [A-Za-z0-9_.-]")
	}
	if tag == "" {
		tag = "latest"
	}
	repo, err = repositoryName(base)
	return repo, tag, err
}

// repositoryName is the canonical REGISTRY/REPOSITORY of name. The first
// component is a registry when it is localhost or holds a '.' or ':'.
func repositoryName(name string) (string, error) {
	if name == "" {
		return "", errors.New("no repository name")
	}
	reg, repo := "", name
	if first, rest, ok := strings.Cut(name, "/"); ok && (first == "localhost" || strings.ContainsAny(first, ".:")) {
		reg, repo = first, rest
	}
	if !onlyChars(repo, repoChars, 1, 255) {
		return "", errors.New("repository " + repo + " is not 1 to 255 of [a-z0-9_./-]")
	}
	if u, err := url.Parse("//" + reg); err != nil || u.Host != reg {
		return "", errors.New("registry " + reg + " is not HOST[:PORT]")
	}
	if reg == "" || reg == "docker.io" {
		reg = defaultRegistry
	}
	if reg == defaultRegistry && !strings.Contains(repo, "/") {
		repo = "library/" + repo
	}
	return reg + "/" + repo, nil
}

// onlyChars reports whether s is min to max characters, all in set.
func onlyChars(s, set string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) < 0 {
			return false
		}
	}
	return true
}

// validDigest reports whether d is a digest go-digest accepts:
// sha256, sha384 or sha512 and as many lower-case hex digits.
func validDigest(d string) bool {
	alg, hex, _ := strings.Cut(d, ":")
	n := map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}[alg]
	return n > 0 && len(hex) == n && strings.Trim(hex, "0123456789abcdef") == ""
}
