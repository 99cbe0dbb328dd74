package stage

/*
#include "protocol.h"
*/
import "C"

import (
	"encoding/hex"
	"net/netip"
	"strconv"
)

// Security is what security.c applies to the command before exec: plain
// values package sandbox decides from its Security and Limits.
type Security struct {
	Caps                 uint64   // the command's capability set, bit N for capability N (always sent)
	Seccomp              [][]byte // raw struct sock_filter programs, installed in order
	AssertUsernsDisabled bool     // fail unless unshare(CLONE_NEWUSER) fails
	NewSession           bool     // setsid for the command
	Rlimits              []Rlimit
	Landlock             *Landlock // nil: no Landlock
}

// Rlimit is one setrlimit(2) call: Resource is RLIMIT_*'s number.
type Rlimit struct {
	Resource   int
	Soft, Hard uint64 // all ones: RLIM_INFINITY
}

// Landlock is a Landlock ruleset: the access rights it handles
// (LANDLOCK_ACCESS_FS_*, LANDLOCK_ACCESS_NET_*, LANDLOCK_SCOPE_* bits)
// and the rules that allow some of them again.
type Landlock struct {
	FS, Net, Scoped uint64
	Paths           []LandlockPath
	Ports           []LandlockPort
}

// LandlockPath allows Access beneath Path; Optional skips a Path that
// does not exist.
type LandlockPath struct {
	Access   uint64
	Optional bool
	Path     string
}

// LandlockPort allows Access (bind or connect) on a TCP port.
type LandlockPort struct {
	Access uint64
	Port   uint16
}

// TAP is the network device tap.c creates (CONFIG) or configures
// (NET_READY's payload, EncodeTAP). Zero fields are left out.
type TAP struct {
	Name               string
	MTU                int
	VnetHdr            bool
	Address4, Address6 netip.Prefix
	Gateway4, Gateway6 netip.Addr
}

// encode appends the security records.
func (s *Security) encode(add func(k, v string)) {
	add(C.KEY_CAPS, strconv.FormatUint(s.Caps, 10))
	for _, p := range s.Seccomp {
		add(C.KEY_SECCOMP, hex.EncodeToString(p))
	}
	flag(add, C.KEY_ASSERT_USERNS_DISABLED, s.AssertUsernsDisabled)
	flag(add, C.KEY_NEW_SESSION, s.NewSession)
	if l := s.Landlock; l != nil {
		add(C.KEY_LANDLOCK, join(l.FS, l.Net, l.Scoped))
		for _, p := range l.Paths {
			opt := uint64(0)
			if p.Optional {
				opt = 1
			}
			add(C.KEY_LANDLOCK_PATH, join(p.Access, opt)+":"+p.Path)
		}
		for _, p := range l.Ports {
			add(C.KEY_LANDLOCK_PORT, join(p.Access, uint64(p.Port)))
		}
	}
	for _, r := range s.Rlimits {
		add(C.KEY_RLIMIT, strconv.Itoa(r.Resource)+":"+join(r.Soft, r.Hard))
	}
}

// encode appends the device's records; a TAP without Name has none.
func (t *TAP) encode(add func(k, v string)) {
	if t == nil || t.Name == "" {
		return
	}
	add(C.KEY_TAP, t.Name)
	if t.MTU > 0 {
		add(C.KEY_TAP_MTU, strconv.Itoa(t.MTU))
	}
	flag(add, C.KEY_TAP_VNET_HDR, t.VnetHdr)
	for _, a := range []struct {
		k  string
		ok bool
		v  func() string
	}{
		{C.KEY_TAP_ADDR4, t.Address4.IsValid(), t.Address4.String},
		{C.KEY_TAP_GW4, t.Gateway4.IsValid(), t.Gateway4.String},
		{C.KEY_TAP_ADDR6, t.Address6.IsValid(), t.Address6.String},
		{C.KEY_TAP_GW6, t.Gateway6.IsValid(), t.Gateway6.String},
	} {
		if a.ok {
			add(a.k, a.v())
		}
	}
}

// EncodeTAP renders t as NET_READY's payload: the device an external
// helper attached, for PID 1 to configure.
func EncodeTAP(t TAP) []byte {
	var b []byte
	t.encode(func(k, v string) { b = appendRecord(b, k, v) })
	return b
}

// flag appends "k=1" when on.
func flag(add func(k, v string), k string, on bool) {
	if on {
		add(k, "1")
	}
}

// join renders numbers as "A:B:…", decimal.
func join(n ...uint64) string {
	b := make([]byte, 0, 24*len(n))
	for i, x := range n {
		if i > 0 {
			b = append(b, ':')
		}
		b = strconv.AppendUint(b, x, 10)
	}
	return string(b)
}
