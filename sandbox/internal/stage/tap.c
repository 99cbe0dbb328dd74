/*
 * tap.c: the sandbox's end of the user-mode network (nsbox run --net user).
 *
 * PID 1, root in the sandbox's new network namespace, creates the TAP
 * device (or, where the command's nested namespaces are made beside PID 1,
 * their holder does, while PID 1 mounts: nest.c), gives it slirp4netns's addresses, MTU and default routes, brings
 * it up, and sends its file descriptor to the launcher (SCM_RIGHTS on the
 * sync socket, message NSBOX_MSG_TAP). The launcher's TCP/IP stack
 * (netstack/) serves it from the host side. Everything is done with
 * ioctl(2) and rtnetlink directly: nothing is executed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "config.h"
#include "stage.h"
#include "stagelib.h"

/* nl_request is one rtnetlink request with room for its attributes. */
struct nl_request {
	struct nlmsghdr h;
	union {
		struct ifaddrmsg ifa;
		struct rtmsg rt;
	};
	char attrs[128];
};

static void nl_attr(struct nl_request *r, unsigned short type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->h.nlmsg_len));
	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* nl_call sends r and returns 0 or -1 with errno set from the kernel's ack. */
static int parse_prefix(const char *s, int *family, unsigned char addr[16], int *bits);

/* nl_new starts a request that creates something (type, with a body of
 * body bytes) for the address given as "ADDR/BITS" or "ADDR": it parses
 * the address into addr (family in *family, prefix length in *bits) and
 * clears r. -1 if the address does not parse. */
static int nl_new(struct nl_request *r, unsigned short type, size_t body, const char *address,
		  int *family, unsigned char addr[16], int *bits)
{
	if (parse_prefix(address, family, addr, bits) < 0)
		return -1;
	memset(r, 0, sizeof *r);
	r->h.nlmsg_len = NLMSG_LENGTH(body);
	r->h.nlmsg_type = type;
	r->h.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	return 0;
}

static int nl_call(int nl, struct nl_request *r)
{
	r->h.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	if (send(nl, r, r->h.nlmsg_len, 0) < 0)
		return -1;
	char buf[512];
	ssize_t n = recv(nl, buf, sizeof buf, 0);
	if (n < 0)
		return -1;
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	if (!NLMSG_OK(h, (unsigned)n) || h->nlmsg_type != NLMSG_ERROR) {
		errno = EPROTO;
		return -1;
	}
	int err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
	if (err) {
		errno = -err;
		return -1;
	}
	return 0;
}

/* parse_prefix reads "ADDR/BITS" (or "ADDR") into a family, bytes, bits. */
static int parse_prefix(const char *s, int *family, unsigned char addr[16], int *bits)
{
	char buf[64];
	if (strlen(s) >= sizeof buf)
		goto bad;
	strcpy(buf, s);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	*family = strchr(buf, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(*family, buf, addr) != 1)
		goto bad;
	unsigned long long n = *family == AF_INET ? 32 : 128;
	if (slash && cfg_number(slash + 1, 0, n, &n) < 0)
		goto bad;
	*bits = (int)n;
	return 0;
bad:
	errno = EINVAL;
	return -1;
}

/* --- configuration ------------------------------------------------------ */

static const char *parse_address(struct cfg_parser *p, void *field, char *v)
{
	(void)p;
	int family, bits;
	unsigned char addr[16];
	if (parse_prefix(v, &family, addr, &bits) < 0)
		return "not an IPv4 or IPv6 address (ADDR or ADDR/BITS)";
	*(const char **)field = v;
	return NULL;
}

#ifdef NSBOX_CONFIG_CHECK
static void format_address(struct cfg_out *o, const char *key, const void *field)
{
	cfg_emit(o, key, "%s", *(const char *const *)field);
}
#endif

/* tap_keys are the device's records, in CONFIG (--net user) or in
 * NET_READY's payload (an external helper's device). */
#define CFG_STRUCT struct cfg_tap
const struct cfg_key tap_keys[] = {
	{CFG_KEY(KEY_TAP, CFG_STR, 0, tap_name), .max = IFNAMSIZ - 1},
	{CFG_KEY(KEY_TAP_MTU, CFG_INT, 0, tap_mtu), .min = 1, .max = 65535, .needs = KEY_TAP},
	{CFG_KEY(KEY_TAP_VNET_HDR, CFG_BOOL, 0, tap_vnet_hdr), .needs = KEY_TAP},
	{CFG_KEY(KEY_TAP_ADDR4, CFG_CUSTOM, 0, tap_addr4), .needs = KEY_TAP, .parse = parse_address, CFG_FORMAT(format_address)},
	{CFG_KEY(KEY_TAP_GW4, CFG_CUSTOM, 0, tap_gw4), .needs = KEY_TAP, .parse = parse_address, CFG_FORMAT(format_address)},
	{CFG_KEY(KEY_TAP_ADDR6, CFG_CUSTOM, 0, tap_addr6), .needs = KEY_TAP, .parse = parse_address, CFG_FORMAT(format_address)},
	{CFG_KEY(KEY_TAP_GW6, CFG_CUSTOM, 0, tap_gw6), .needs = KEY_TAP, .parse = parse_address, CFG_FORMAT(format_address)},
	{.key = NULL},
};

static int add_address(int nl, int ifindex, const char *prefix)
{
	int family, bits;
	unsigned char addr[16];
	struct nl_request r;
	if (nl_new(&r, RTM_NEWADDR, sizeof r.ifa, prefix, &family, addr, &bits) < 0)
		return -1;
	r.ifa.ifa_family = (unsigned char)family;
	r.ifa.ifa_prefixlen = (unsigned char)bits;
	r.ifa.ifa_index = (unsigned)ifindex;
	size_t len = family == AF_INET ? 4 : 16;
	nl_attr(&r, IFA_LOCAL, addr, len);
	nl_attr(&r, IFA_ADDRESS, addr, len);
	if (family == AF_INET6) {
		/* No duplicate address detection: the link has one other end,
		 * and DAD would keep the address unusable for a second. */
		unsigned flags = IFA_F_NODAD;
		nl_attr(&r, IFA_FLAGS, &flags, sizeof flags);
	}
	return nl_call(nl, &r);
}

static int add_default_route(int nl, int ifindex, const char *gateway)
{
	int family, bits;
	unsigned char addr[16];
	struct nl_request r;
	if (nl_new(&r, RTM_NEWROUTE, sizeof r.rt, gateway, &family, addr, &bits) < 0)
		return -1;
	r.rt.rtm_family = (unsigned char)family;
	r.rt.rtm_table = RT_TABLE_MAIN;
	r.rt.rtm_protocol = RTPROT_BOOT;
	r.rt.rtm_scope = RT_SCOPE_UNIVERSE;
	r.rt.rtm_type = RTN_UNICAST;
	nl_attr(&r, RTA_GATEWAY, addr, family == AF_INET ? 4 : 16);
	unsigned oif = (unsigned)ifindex;
	nl_attr(&r, RTA_OIF, &oif, sizeof oif);
	return nl_call(nl, &r);
}

/* configure_tap sets the MTU, brings the device up, and adds its
 * addresses and default routes. */
static void configure_tap(const struct config *c)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", c->tap.tap_name);

	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		fail("create a socket to configure %s", c->tap.tap_name);
	if (c->tap.tap_mtu > 0) {
		ifr.ifr_mtu = c->tap.tap_mtu;
		if (ioctl(s, SIOCSIFMTU, &ifr) < 0)
			fail("set the MTU of %s to %d", c->tap.tap_name, c->tap.tap_mtu);
	}
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		fail("read the flags of %s", c->tap.tap_name);
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		fail("bring %s up", c->tap.tap_name);
	close(s);
	int ifindex = (int)if_nametoindex(c->tap.tap_name);
	if (ifindex == 0)
		fail("find the index of %s", c->tap.tap_name);

	int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (nl < 0)
		fail("open a netlink socket to configure %s", c->tap.tap_name);
	if (c->tap.tap_addr4 && add_address(nl, ifindex, c->tap.tap_addr4) < 0)
		fail("add %s to %s", c->tap.tap_addr4, c->tap.tap_name);
	if (c->tap.tap_gw4 && add_default_route(nl, ifindex, c->tap.tap_gw4) < 0)
		fail("add the default route via %s", c->tap.tap_gw4);
	/* A kernel without IPv6 (ipv6.disable=1) keeps an IPv4-only sandbox. */
	if (c->tap.tap_addr6 && add_address(nl, ifindex, c->tap.tap_addr6) < 0) {
		if (errno != EAFNOSUPPORT && errno != EOPNOTSUPP)
			fail("add %s to %s", c->tap.tap_addr6, c->tap.tap_name);
	} else if (c->tap.tap_gw6 && add_default_route(nl, ifindex, c->tap.tap_gw6) < 0) {
		fail("add the default route via %s", c->tap.tap_gw6);
	}
	close(nl);
}

int make_tap(const struct config *c)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		fail_fix("make /dev/net/tun exist and readable and writable by everyone (mknod /dev/net/tun c 10 200; chmod 0666 /dev/net/tun), or use --net none",
			 "open /dev/net/tun for --net user");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", c->tap.tap_name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (c->tap.tap_vnet_hdr)
		ifr.ifr_flags |= IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		fail("create the TAP device %s (TUNSETIFF)", c->tap.tap_name);
	/* Persistent: closing the last descriptor of a device that is not
	 * unregisters it on the spot, and that waits for RCU grace periods
	 * (15–25 ms here), in the launcher's close after the sandbox ended.
	 * A persistent one is unregistered with its network namespace, in
	 * the kernel's cleanup worker, once the launcher's descriptor (whose
	 * socket holds the namespace) is gone. Nothing can attach to it in
	 * between: every process of the sandbox is gone by then. Best
	 * effort: without it the end of the run is only slower. */
	(void)ioctl(fd, TUNSETPERSIST, 1);
	/* With a virtio_net_hdr on each frame (the launcher's format, see
	 * netstack/link.go), TCP crosses the device in segments of up to
	 * 64 KiB with partial checksums, whatever the MTU. */
	if (c->tap.tap_vnet_hdr &&
	    ioctl(fd, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)) < 0)
		fail("turn on checksum and TCP segmentation offload on %s (TUNSETOFFLOAD)", c->tap.tap_name);
	configure_tap(c);
	return fd;
}

void setup_tap(const struct config *c)
{
	int fd = make_tap(c);
	send_fd(NSBOX_MSG_TAP, fd, "the TAP device");
	close(fd);
}

void wait_network(void)
{
	/* PID 1 is dumpable already, for the helper's opening of
	 * /proc/PID1/ns (nsbox_stage sets it before the clone); this keeps
	 * it so in case anything on the way changed its credentials. The
	 * host user owns this process anyway; the command is made
	 * non-dumpable again when it switches identity. */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		fail("prctl(PR_SET_DUMPABLE) for the network helper");
	struct nsbox_msg m;
	char *buf = await_launcher(NSBOX_MSG_NET_READY, &m);
	/* Only the device's records, decoded as CONFIG's are. */
	struct config t;
	memset(&t, 0, sizeof t);
	char err[512];
	if (config_decode(buf, m.len, &t, CFG_AREA_TAP, 0, err, sizeof err) < 0) {
		send_msg(NSBOX_MSG_ERROR, EINVAL, err);
		_exit(125);
	}
	if (t.tap.tap_name)
		configure_tap(&t);
}
