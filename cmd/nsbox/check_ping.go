package main

import (
	"fmt"
	"os"

	"github.com/nsbox/nsbox/network"
)

// checkPing reports whether --net user can forward ICMP echo: the
// launcher sends it with an unprivileged ICMP socket, which the host
// allows only to the groups in net.ipv4.ping_group_range. Informational:
// everything else works without it.
func checkPing() checkResult {
	r := checkResult{Name: "ICMP echo (ping) in --net user", NeededBy: "ping in --net user"}
	first, last := network.PingGroupRange()
	rng := fmt.Sprintf("net.ipv4.ping_group_range = %d %d", first, last)
	if !network.PingAllowed() {
		r.Detail = fmt.Sprintf("%s excludes gid %d and its groups, so ping gets no reply", rng, os.Getgid())
		r.Fix = `as root: sysctl -w net.ipv4.ping_group_range="0 2147483647" (and in /etc/sysctl.d to keep it)`
		return r
	}
	r.OK = true
	r.Detail = rng + " includes gid " + fmt.Sprint(os.Getgid()) + " or one of its groups"
	return r
}
