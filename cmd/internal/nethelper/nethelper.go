// Package nethelper is the "net" job of nsbox's helper program: the
// launcher's side (New, Client.Start, Configure and Serve, a
// tapnet.Server) and the messages both sides exchange. The helper's side is cmd/nsbox-helper/net.go; it
// runs gVisor's stack (package netstack), which nsbox itself does not
// link.
//
// The exchange, on the helper's stdin and on one SOCK_SEQPACKET socket
// (the helper's fd 4; fd 3 is its program, which it closes):
//
//	launcher → stdin    Request as JSON, then EOF (EOF alone: no sandbox, exit)
//	launcher → socket   "tap" with the TAP device's descriptor (SCM_RIGHTS)
//	helper   → socket   Reply as JSON once the stack serves it, or failed
//	launcher → socket   Control as JSON (nsbox port add, rm, ls), any number
//	helper   → socket   Reply as JSON, with the published ports
//	launcher closes its end: the helper exits
//
// The helper starts before the launcher has read its flags (Client.Start;
// where it can, the ELF constructor starts it even before the launcher's
// Go runtime, and Early adopts it),
// and the Request follows on the pipe once they are (Client.Configure):
// its exec, Go runtime and package inits, most of its start, run while
// the launcher builds the spec and the sandbox's stage waits for CONFIG,
// and gVisor's stack and all of it that needs no device
// (netstack.Prepare) while the sandbox is being set up. Once the device
// comes, only netstack's Attach and the two messages stand between it
// and the sandbox going on. It exits on EOF whether the launcher closed
// the socket or died before sending the device.
package nethelper

import (
	"github.com/nsbox/nsbox/network"
)

// Job is the helper's subcommand.
const Job = "net"

// Protocol numbers this exchange; a helper from another build refuses a
// number it does not speak.
const Protocol = 1

// Request is what the helper serves.
type Request struct {
	Protocol int
	Config   network.UserConfig
	// Verbose has the helper write Config.Log's lines to its stderr,
	// prefixed "nsbox: net: " (Log itself does not cross).
	Verbose bool
}

// Control asks the serving helper to change or list the published ports.
type Control struct {
	Op   string // "add", "rm" or "ls"
	Port network.Publish
}

// Reply is the helper's answer to the device (empty when the stack serves
// it) and to each Control.
type Reply struct {
	// Ports are the published ports after a Control.
	Ports []network.Publish `json:",omitempty"`
	Error *network.Error    `json:",omitempty"`
	// Cause is Error.Err's text (an error value does not cross).
	Cause string `json:",omitempty"`
	// Message is a failure that is not a *network.Error.
	Message string `json:",omitempty"`
}

// MaxRequest bounds the request the helper reads.
const MaxRequest = 16 << 20

// MaxReply bounds one reply message.
const MaxReply = 64 << 10
