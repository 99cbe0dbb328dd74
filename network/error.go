package network

import "strings"

// Error is a network setting that cannot be used, worded in this
// package's terms: Field names the Config field (a UserConfig's, or the
// Config of package slirp4netns or pasta), so a program with flags can
// name its own flag instead (nsbox's cmd does, in net_flags.go).
type Error struct {
	// Mode is the network mode, "user", "slirp4netns" or "pasta"; ""
	// when the problem is not particular to one.
	Mode string
	// Field is the Config field at fault ("MTU", "Publish", "DNSServers");
	// "" when the problem is the mode as a whole (a helper not installed,
	// one that exited).
	Field string
	// Value is the field's value as given.
	Value string
	// Problem says what is wrong.
	Problem string
	// Fix is the remedy, when one is known. It names fields, not flags.
	Fix string
	// Err is the cause, when there is one.
	Err error `json:"-"`
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Mode != "" && e.Field == "" {
		b.WriteString(e.Mode)
	}
	if e.Field != "" {
		b.WriteString(strings.TrimSpace(e.Field + " " + e.Value))
	}
	if b.Len() > 0 && e.Problem != "" {
		b.WriteString(": ")
	}
	b.WriteString(e.Problem)
	if e.Err != nil {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	if e.Fix != "" {
		b.WriteString("; fix: " + e.Fix)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }
