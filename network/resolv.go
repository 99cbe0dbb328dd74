package network

import (
	"fmt"
	"strings"
)

// ResolvConf is the /etc/resolv.conf the sandbox gets with --net user: our
// DNS forwarder, IPv4 first, and the host's search domains.
func ResolvConf(search []string) []byte {
	var b strings.Builder
	b.WriteString("# nsbox --net user: the DNS forwarder in the launcher\n")
	fmt.Fprintf(&b, "nameserver %v\nnameserver %v\n", DNSIPv4, DNSIPv6)
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	return []byte(b.String())
}

// Hosts is the /etc/hosts the sandbox gets: loopback names, and hostname
// (when not empty) on the sandbox's own addresses.
func Hosts(hostname string) []byte {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if hostname != "" {
		fmt.Fprintf(&b, "%v\t%s\n%v\t%s\n", SandboxIPv4, hostname, SandboxIPv6, hostname)
	}
	return []byte(b.String())
}

// ResolvConfSearch returns the search domains of a resolv.conf's text.
func ResolvConfSearch(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && (f[0] == "search" || f[0] == "domain") {
			out = f[1:] // the last one wins, as in the C library
		}
	}
	return out
}
