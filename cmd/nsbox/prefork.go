package main

// `nsbox run` and `nsbox exec` start their sandbox stage before the Go
// runtime does: see nsbox_prefork in sandbox/internal/stage/stage.h. Defining this symbol
// opts in (a list: each name ends with a NUL, and an empty name ends it).

// `nsbox run`'s stage also creates its namespaces before the runtime has
// started (nsbox_prefork_unshares), unless a flag asks for other
// namespaces or for limits (a cgroup): the vetoes.

/*
const char nsbox_prefork_command[] = "run\0exec\0";
const char nsbox_prefork_unshares[] = "run\0";
const char nsbox_prefork_unshare_vetoes[] = "--share\0--unshare\0--net=host\0--memory\0--pids\0--cpus\0";
*/
import "C"
