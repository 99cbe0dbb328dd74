/*
 * ping.c: let the sandbox's users open ICMP echo sockets.
 *
 * net.ipv4.ping_group_range is per network namespace, and a new one starts
 * at "1 0": nobody may create socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP), so
 * an unprivileged ping inside fails even where the network carries ICMP
 * echo (--net user forwards it through the launcher's own ICMP socket).
 * PID 1, root of the user namespace that owns the new network namespace,
 * widens it to every group mapped into the sandbox, as rootlesskit and
 * podman do. The sysctl takes ids of the writer's user namespace and
 * stores the kernel ids they map to, so the range must run from the
 * mapped id with the lowest host id to the one with the highest.
 *
 * For the same reason it opens every port to binding
 * (net.ipv4.ip_unprivileged_port_start = 0): the command runs in a nested
 * user namespace (sandbox/nested.go) that holds no capability over this
 * network namespace, so even root inside could not otherwise listen on
 * port 80 of a network that belongs to the sandbox alone.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "stage.h"
#include "stagelib.h"

/* proc_open opens NAME under proc, a descriptor of a procfs (or -1 for
 * the one on /proc). */
static int proc_open(int proc, const char *name, int flags)
{
	if (proc >= 0)
		return openat(proc, name, flags | O_CLOEXEC);
	char path[192];
	snprintf(path, sizeof path, "/proc/%s", name);
	return open(path, flags | O_CLOEXEC);
}

/* write_sysctl writes v to /proc/sys/NAME of our network namespace; best
 * effort. */
static void write_sysctl(int proc, const char *name, const char *v)
{
	char path[128];
	snprintf(path, sizeof path, "sys/%s", name);
	int fd = proc_open(proc, path, O_WRONLY);
	if (fd < 0)
		return;
	if (write(fd, v, strlen(v)) < 0) {
		/* nothing: the sandbox works, these need privilege inside */
	}
	close(fd);
}

void allow_ping(int proc)
{
	write_sysctl(proc, "net/ipv4/ip_unprivileged_port_start", "0\n");
	int fd = proc_open(proc, "self/gid_map", O_RDONLY);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "re");
	if (!f) {
		if (fd >= 0)
			close(fd);
		return;
	}
	unsigned long inside, outside, count;
	unsigned long lo_in = 0, lo_out = -1UL, hi_in = 0, hi_out = 0;
	int any = 0;
	while (fscanf(f, "%lu %lu %lu", &inside, &outside, &count) == 3) {
		if (count == 0)
			continue;
		if (outside < lo_out)
			lo_in = inside, lo_out = outside;
		if (outside + count - 1 >= hi_out)
			hi_in = inside + count - 1, hi_out = outside + count - 1;
		any = 1;
	}
	fclose(f);
	if (!any)
		return;
	char v[64];
	snprintf(v, sizeof v, "%lu %lu\n", lo_in, hi_in);
	write_sysctl(proc, "net/ipv4/ping_group_range", v);
}
