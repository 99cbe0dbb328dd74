/*
 * protocol.h: the CONFIG protocol's names, defined once. The stage's key
 * tables (stage.c, mounts.c, security.c, tap.c) use these macros, and the
 * launcher's encoder (config.go, encode.go) reads the same macros through
 * cgo as Go constants (C.KEY_ARG, C.MOUNT_READONLY): a key or a bit exists
 * here or nowhere. keys_test.go fails when a "key" string literal shows up
 * in a Go file outside this package, or when a macro here is missing from
 * the C tables or unused by the Go encoder.
 *
 * A record is "KEY=value\0"; config.h says how the decoder reads them.
 */
#ifndef NSBOX_PROTOCOL_H
#define NSBOX_PROTOCOL_H

/* The first record: the protocol's version (NSBOX_CONFIG_VERSION). */
#define KEY_VERSION "v"

/* --- stage.c: namespaces, identity, command, terminal, exec ---------- */
#define KEY_ARG "arg"                   /* repeated: the command's argv */
#define KEY_ENV "env"                   /* repeated: its environment */
#define KEY_ARGV0 "argv0"
#define KEY_UNSHARE "unshare"           /* CLONE_NEW* flags */
#define KEY_SETUP_ROOT "setup-root"
#define KEY_SETGROUPS "setgroups"
#define KEY_GROUP "group"             /* repeated: a supplementary gid, with setgroups */
#define KEY_PROC "proc"
#define KEY_LO "lo"
#define KEY_NO_NEW_PRIVS "no-new-privs"
#define KEY_TTY "tty"
#define KEY_EXTRA_FDS "extra-fds"
#define KEY_UID "uid"
#define KEY_GID "gid"
#define KEY_HOSTNAME "hostname"
#define KEY_CWD "cwd"
#define KEY_JOIN_PID "join-pid"
#define KEY_JOIN_START "join-start"
#define KEY_JOIN_NESTED "join-nested"
#define KEY_JOIN_PID1_COMMAND "join-pid1-command"
#define KEY_LIVE_OP "live-op"           /* LIVE_MOUNT, LIVE_UMOUNT, LIVE_SOCKET, LIVE_SIGNAL (live.c) */
#define KEY_LIVE_SRC "live-src"
#define KEY_LIVE_DEST "live-dest"
#define KEY_LIVE_ANCHOR "live-anchor"   /* the host path under an added mount (live.c) */
#define KEY_LIVE_RO "live-ro"
#define KEY_LIVE_MKDIR "live-mkdir"
#define KEY_LIVE_FAMILY "live-family"
#define KEY_LIVE_TYPE "live-type"
#define KEY_LIVE_SIGNAL "live-signal" /* LIVE_SIGNAL: the signal */
#define KEY_PTY "pty"
#define KEY_PTY_ROWS "pty-rows"
#define KEY_PTY_COLS "pty-cols"
#define KEY_PTY_KEEP "pty-keep"
#define KEY_NEST_UID_MAP "nest-uid-map"
#define KEY_NEST_GID_MAP "nest-gid-map"
#define KEY_NET_WAIT "net-wait"
#define KEY_EXEC_WAIT "exec-wait"
#define KEY_COMMAND_FIRST "command-first"
#define KEY_PID1_COMMAND "pid1-command"
#define KEY_ENTER_USERNS "enter-userns"
#define KEY_ENTER_USERNS2 "enter-userns2"
#define KEY_ENTER_PIDNS "enter-pidns"
#define KEY_NEST_IDENTITY "nest-identity"
#define KEY_KEEP_UID "keep-uid"
#define KEY_KEEP_GID "keep-gid"
#define KEY_MAPS_LATER "maps-later"

/* --- mounts.c: the new root and its mount ops ------------------------ */
#define KEY_NEW_ROOT "new-root"
#define KEY_ROOT_MAPPED "root-mapped"
#define KEY_OWNER_UID "owner-uid"
#define KEY_OWNER_GID "owner-gid"
#define KEY_NEST_UID "nest-uid"
#define KEY_NEST_GID "nest-gid"
#define KEY_CWD_TRY "cwd-try"
#define KEY_MOUNT "mount"               /* opens a mount op: "mount=TYPE" */
#define KEY_MOUNT_SRC "mount-src"
#define KEY_MOUNT_DST "mount-dst"
#define KEY_MOUNT_FLAGS "mount-flags"   /* MOUNT_* bits below */
#define KEY_MOUNT_MODE "mount-mode"
#define KEY_MOUNT_SIZE "mount-size"
#define KEY_MOUNT_DATA "mount-data"     /* hex */
#define KEY_MOUNT_LOWER "mount-lower"
#define KEY_MOUNT_UPPER "mount-upper"
#define KEY_MOUNT_WORK "mount-work"
#define KEY_MOUNT_WHAT "mount-what"

/* --- security.c: capabilities, seccomp, rlimits, Landlock ------------ */
#define KEY_CAPS "caps"
#define KEY_SECCOMP "seccomp"           /* repeated: hex struct sock_filter[] */
#define KEY_NEW_SESSION "new-session"
#define KEY_ASSERT_USERNS_DISABLED "assert-userns-disabled"
#define KEY_RLIMIT "rlimit"             /* repeated: RESOURCE:SOFT:HARD */
#define KEY_LANDLOCK "landlock"         /* FS:NET:SCOPED handled */
#define KEY_LANDLOCK_PATH "landlock-path" /* ACCESS:OPTIONAL:PATH */
#define KEY_LANDLOCK_PORT "landlock-port" /* ACCESS:PORT */

/* --- tap.c: the network device (also NET_READY's payload) ------------ */
#define KEY_TAP "tap"
#define KEY_TAP_MTU "tap-mtu"
#define KEY_TAP_VNET_HDR "tap-vnet-hdr"
#define KEY_TAP_ADDR4 "tap-addr4"
#define KEY_TAP_GW4 "tap-gw4"
#define KEY_TAP_ADDR6 "tap-addr6"
#define KEY_TAP_GW6 "tap-gw6"

/* The bits of a "mount-flags" record (struct mount_op's flags). */
enum mount_flag {
	MOUNT_READONLY = 1 << 0,
	MOUNT_DEVICES = 1 << 1,
	MOUNT_OPTIONAL = 1 << 2,
	MOUNT_OWNED = 1 << 3,        /* a tmpfs whose root is the command's */
	MOUNT_NONRECURSIVE = 1 << 4, /* a remount-ro of the one mount, not its submounts */
	MOUNT_TUN = 1 << 5,          /* a dev op that also holds the host's /dev/net/tun */
	MOUNT_MODE_SET = 1 << 6,     /* mode is meant even when 0 (else 0: the type's default) */
	MOUNT_ALL_FLAGS = (1 << 7) - 1,
};

#endif
