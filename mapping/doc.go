// Package mapping plans and applies the uid and gid maps of a new user
// namespace: which inner ids (as seen inside the sandbox) stand for which
// outer ids (on the host), and how to get the kernel to accept that.
//
// # The kernel's rules
//
// The rules below are user_namespaces(7)'s; every decision in this
// package follows from one of them.
//
//   - /proc/PID/uid_map and /proc/PID/gid_map start empty and can be
//     written once. The whole map must arrive in a single write(2) at
//     offset 0, shorter than a page: a write that continues at a later
//     offset fails with EINVAL, and any write after a map is set fails
//     with EPERM. This is why [Plan.Apply] opens the file and writes all of
//     [Format]'s text with one call, never through a buffered writer.
//   - A map holds at most 340 lines ("extents", [MaxExtents]) of
//     "inner outer count". Inner ranges may not overlap one another, and
//     neither may outer ranges. Counts are at least 1, and no range may
//     reach 2^32-1, which is (uid_t)-1, the invalid id.
//   - The writer must be in the parent user namespace (or be the parent
//     of the namespace's owner) and act on a process of the new one; the
//     maps are therefore written from outside, after the child has
//     unshared or cloned its namespace.
//   - Without CAP_SETUID (CAP_SETGID for gid_map) in the parent
//     namespace, a process may write exactly one extent of count 1 that
//     maps its own effective uid (gid). Mapping anything else, for
//     instance the subordinate ids an administrator granted in
//     /etc/subuid and /etc/subgid, takes the setuid helpers newuidmap(1)
//     and newgidmap(1) from shadow's uidmap package. They check each
//     requested outer range against those files (or the caller's own id)
//     and then write the map with their privilege. [FindHelpers] finds
//     them and checks that they can work: setuid root, or carrying the
//     cap_setuid / cap_setgid file capability.
//   - Before an unprivileged process may write gid_map itself, it must
//     write "deny" to /proc/PID/setgroups, so that dropping supplementary
//     groups cannot be used to escape a negative group permission. That
//     is permanent for the namespace: setgroups(2) will fail inside it
//     ([Plan.SetgroupsAllowed] reports this). newgidmap, and real root,
//     need no such step.
//   - Real root (CAP_SETUID and CAP_SETGID in the initial namespace) may
//     write any map directly. This package still refuses to map host root
//     into a sandbox unless asked to ([Request.HostRoot]): by default real
//     root gets its own subordinate range, or the [RootFallbackCount] ids
//     from [RootFallbackStart] on.
//
// # Use
//
// Build a [Request] from the caller's ids, its subordinate ranges and its
// flags, call [NewPlan] (which computes and then validates the maps, so
// errors surface before anything runs), start the child in a new user
// namespace, and call [Plan.Apply] with its pid from the parent
// namespace. [ForCaller] does the first two for the calling process:
// [Complete] reads what the Request needs from this system (the
// namespace we run in, the subordinate ids through package subid, the
// helpers), then NewPlan; package sandbox calls it when a Spec comes
// without maps.
package mapping
