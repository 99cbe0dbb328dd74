// Package network is what nsbox's network modes share, and nothing that
// needs a TCP/IP stack: the addresses of slirp4netns's layout that every
// mode gives the sandbox, published ports (Publish, ParsePublish), the
// egress Policy of the built-in user-mode network and its UserConfig, the
// /etc/resolv.conf and /etc/hosts a sandbox gets, and Error, the one
// error shape of every mode.
//
// It imports nothing of nsbox's, package sandbox included, so the helper
// program that runs the stack links neither. The modes are the packages
// below it, each with New(Config) returning
// the *sandbox.Network to put in a Spec: usernet (the built-in stack,
// gVisor's tcpip, served in the calling process), slirp4netns and pasta
// (external helpers). This package imports no stack, so a program that
// only names a network (nsbox's CLI, which runs the stack in a helper
// process: cmd/nsbox-helper) does not pay for one at start: a Go program
// runs the init of every package it links, gVisor's 44 included.
//
// Errors name Config fields, never flags (Error.Field); a program with
// flags words them as its own.
package network
