// Package replay is the nsbox command's start path that does not wait
// for the Go runtime (sandbox/fastpath lists it with the other speed
// tricks). After a run, the Go launcher keeps the plan it carried out (the
// CONFIG it sent the stage, the id maps it wrote, its state record with
// holes) with every input the plan was derived from; the next time the
// same invocation starts, the ELF constructor (sandbox/internal/stage,
// replay.c) checks every input still matches, byte for byte, and carries
// the plan out itself, else it returns and the Go launcher runs as usual.
//
// This package is the Go half: the hook through which package sandbox
// tells the launcher what it sent (Of, Sent), the plan's file format
// (Plan.Encode, which replay.c decodes), the inputs' identities as both
// halves compute them (Check), and the store the plans are kept in
// (Store). It decides nothing about which runs may be replayed: the
// nsbox command does (cmd/nsbox/replay.go).
package replay

import (
	"github.com/nsbox/nsbox/mapping"
)

// Settings are a Spec's replay hooks; the zero value asks for none. They
// are not package sandbox's API: the nsbox command reaches a Spec's
// through Of.
type Settings struct {
	// Sent, if not nil, is called by Start with what it is about to send
	// to the stage, before it sends it. An error from it stops the start
	// (nothing of the sandbox exists yet but its stage, which Start ends).
	Sent func(Sent) error
}

// Sent is what a start sends and writes on its way to the sandbox.
type Sent struct {
	// Config is the CONFIG message's payload.
	Config []byte
	// UIDMap and GIDMap are how the maps are written; MapsOK is false
	// when Start will not write them itself (an entered user namespace,
	// maps its caller writes, a plan that cannot be applied).
	UIDMap, GIDMap mapping.Step
	MapsOK         bool
	// EarlyPrefork tells the stage is the one the ELF constructor forked,
	// sent UNSHARE before its CONFIG (sandbox/fastpath: early namespaces).
	EarlyPrefork bool
}

var of func(spec any) *Settings

// Register is called once, by package sandbox: f returns a
// *sandbox.Spec's Settings.
func Register(f func(spec any) *Settings) { of = f }

// Of returns the Settings of spec, a *sandbox.Spec.
func Of(spec any) *Settings { return of(spec) }
