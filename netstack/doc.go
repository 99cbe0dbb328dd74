// Package netstack is nsbox's built-in user-mode network (--net user): a
// TCP/IP stack (gVisor's tcpip) running in the launcher, on the host side,
// that serves the TAP device PID 1 created in the sandbox's network
// namespace.
//
// The sandbox sees slirp4netns's layout, so habits carry over:
//
//	sandbox 10.0.2.100/24   gateway 10.0.2.2   DNS 10.0.2.3
//	        fd00::100/64            fd00::2        fd00::3
//
// Every TCP connection and UDP flow the sandbox opens is terminated in the
// stack and re-originated from the launcher with ordinary host sockets, so
// the sandbox reaches what the launching user can reach, and nothing more:
// no privilege is used. A refused host connection becomes a RST inside; a
// denied UDP flow an ICMP port unreachable. ICMP echo (ping) is taken off
// the link before the stack and sent with the launcher's unprivileged ICMP
// socket, which the host allows to net.ipv4.ping_group_range (icmp.go);
// where it does not, or the policy denies, ping gets no reply.
//
// Host loopback is unreachable by default. Config.AllowHostLoopback maps the
// gateway address to the host's 127.0.0.1 (and ::1), as slirp4netns does
// unless --disable-host-loopback. The DNS forwarder is the one exception: it
// may use a loopback resolver such as systemd-resolved's 127.0.0.53,
// because it is the launcher that sends the query, not the sandbox.
//
// Policy filters outbound traffic by destination (see Policy; its
// --deny-private rules refuse the host's own addresses, hostaddrs.go).
// What a sandbox can make the launcher hold is capped: connections,
// flows, DNS queries in flight, unsent bytes per host connection
// (caps.go). Publish forwards host ports into the sandbox. A forwarded
// connection from a loopback client is presented inside as coming from
// the gateway, never from 127.0.0.1: a service trusting localhost must
// not trust the host's other users (CVE-2021-20199).
//
// Layering follows gVisor's: link.go (the TAP file descriptor) → stack.go
// (addresses, routes, protocol options) → tcp.go, udp.go, icmp.go, dns.go,
// publish.go (what the launcher does with each flow).
package netstack
