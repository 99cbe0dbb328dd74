// Package seccomp builds nsbox's seccomp filters and checks the ones users
// bring. A filter is a classic BPF program generated here, in Go, with no
// libseccomp, so the binary stays static; [Build] returns it as the raw
// struct sock_filter array that the stage (sandbox/internal/stage/security.c) installs
// with seccomp(2) as the command's last step before exec, and [Check]
// vets a user's program (bubblewrap's --seccomp format) before any
// namespace exists.
//
// # What the default filter refuses
//
// [Rules.Defaults] answers EPERM for:
//
//   - ioctl TIOCSTI and TIOCLINUX: both push bytes into the input of a
//     terminal the command may share with the host (CVE-2017-5226);
//   - keyctl, add_key, request_key: the kernel keyring is not namespaced;
//   - kexec_load, kexec_file_load, init_module, finit_module,
//     delete_module: the kernel itself (already refused without host
//     privilege; refused here before the kernel's own code is reached);
//   - perf_event_open, userfaultfd: frequent kernel exploit primitives;
//   - io_uring_setup, io_uring_enter, io_uring_register (unless
//     [Rules.AllowIOUring]): the operations io_uring performs are not
//     system calls, so no seccomp filter sees them, and it has been a
//     steady source of kernel exploits (Docker's default profile refuses
//     it too);
//   - iopl, ioperm (x86): I/O ports;
//   - the x32 ABI on x86_64 (syscall numbers with bit 30 set,
//     __X32_SYSCALL_BIT): a second syscall table with its own bugs, used
//     by nothing nsbox runs.
//
// # No nested user namespaces
//
// [Rules.DisableUserns] (bubblewrap's --disable-userns) makes nested user
// namespaces impossible:
//
//   - unshare and clone with CLONE_NEWUSER in their flags: EPERM;
//   - clone3: ENOSYS. Its flags are in a struct in memory, which seccomp
//     cannot read, so the filter cannot tell a plain thread from a new user
//     namespace; ENOSYS makes glibc and Go fall back to clone, which it can
//     check;
//   - setns with CLONE_NEWUSER in nstype, or nstype 0 ("any type": the
//     filter cannot see what the fd names): EPERM. Only a user namespace
//     the caller has CAP_SYS_ADMIN in can be joined at all, which means
//     one created inside the sandbox: with unshare, clone and clone3
//     refused there is none, so this closes a door that is already shut
//     unless such an fd is passed in from outside.
//
// # Kernel rules relied on
//
// From seccomp(2) and the kernel's Documentation/userspace-api/seccomp_filter.rst:
//
//   - The filter sees only struct seccomp_data (linux/seccomp.h): nr,
//     arch, instruction_pointer and six 64-bit args, loaded as 32-bit
//     words in the host's byte order. It cannot read memory, hence clone3's
//     ENOSYS. The ioctl request, the flags of clone and unshare and
//     setns's nstype are (unsigned) ints to the kernel, so only the low
//     word is compared: the upper half is ignored by the syscall and must
//     not let TIOCSTI or CLONE_NEWUSER through.
//   - System call numbers differ per ABI, and a process can enter the
//     kernel through its architecture's compat ABI too, so the filter
//     checks arch first: the host's native one and its 32-bit compat ABI
//     (i386 on x86_64, arm on arm64) each get their own numbers; any other
//     architecture kills the process (SECCOMP_RET_KILL_PROCESS, Linux
//     4.14), as libseccomp does.
//   - A program is 1 to BPF_MAXINSNS (4096) instructions, must end in a
//     return and may not jump past its end; [Check] refuses these with a
//     message before the kernel would with a bare EINVAL. The kernel's
//     verifier checks the rest when the stage installs it.
//   - Installing a filter needs no_new_privs or CAP_SYS_ADMIN in the
//     caller's user namespace (else EACCES): the stage installs it last,
//     after setting no_new_privs (Process.NoNewPrivs) and the command's
//     capabilities, so it works when either holds. Filters stack and
//     cannot be removed: the kernel runs every one on every call of the
//     command and its descendants, and the strictest answer wins, so a
//     user's program can only add refusals to nsbox's.
//
// # Where the numbers come from
//
// The numbers are golang.org/x/sys/unix's SYS_* constants for every
// architecture, copied into tables.go by gen_tables.go (go generate): a
// build only compiles its own architecture's constants, and the compat ABI
// needs the other's. TestSeccompTablesUpToDate fails when the committed
// tables differ from what the generator writes.
package seccomp
