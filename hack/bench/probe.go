package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// probe asks nsbox whether it accepts flags by running
// `nsbox run FLAGS -- true` once. A flag nsbox does not know makes it
// exit 125 with "unknown flag" (pflag's words): that build lacks the
// feature, and the report says so. Any other failure is returned as is,
// so a broken feature shows up as broken, not as missing.
func probe(nsbox string, flags ...string) error {
	argv := append([]string{nsbox, "run"}, flags...)
	argv = append(argv, "--", "true")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if isUnknownFlag(stderr.String()) {
		return fmt.Errorf("%w: nsbox rejects %s (%s)", errUnavailable, strings.Join(flags, " "), lastLine(stderr.String()))
	}
	return commandError(argv, err, stderr.String())
}

// isUnknownFlag tells pflag's "unknown flag: --net" and "unknown
// shorthand flag: 'p' in -p" from other failures.
func isUnknownFlag(stderr string) bool {
	return strings.Contains(stderr, "unknown flag") || strings.Contains(stderr, "unknown shorthand flag")
}

// missingReason turns a probe failure into the text the report shows in
// place of numbers.
func missingReason(err error) string {
	if errors.Is(err, errUnavailable) {
		return err.Error()
	}
	return "fails on this host: " + err.Error()
}
