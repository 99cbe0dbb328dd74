package network

import (
	"os"
	"strconv"
	"strings"
)

// PingGroupRange is the host's net.ipv4.ping_group_range: the groups
// whose members may open ICMP echo sockets, which --net user needs to
// forward ping. Where it cannot be read, it is "1 0": nobody.
func PingGroupRange() (first, last uint32) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ping_group_range")
	if err != nil {
		return 1, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 1, 0
	}
	lo, err1 := strconv.ParseUint(f[0], 10, 32)
	hi, err2 := strconv.ParseUint(f[1], 10, 32)
	if err1 != nil || err2 != nil {
		return 1, 0
	}
	return uint32(lo), uint32(hi)
}

// PingAllowed reports whether this process may open ICMP echo sockets on
// the host: whether its group or one of its supplementary groups is in
// PingGroupRange.
func PingAllowed() bool {
	first, last := PingGroupRange()
	gids, _ := os.Getgroups()
	for _, g := range append(gids, os.Getgid()) {
		if uint32(g) >= first && uint32(g) <= last {
			return true
		}
	}
	return false
}
