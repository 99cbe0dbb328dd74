/*
 * nsbox-helper-loader starts the helper program that nsbox carries inside
 * its own file without copying it: the launcher runs this loader (a few KB,
 * from a sealed memfd) with nsbox's executable open read-only on fd 3, and
 * the loader maps the helper's segments from that file at the helper's
 * addresses, as the kernel's ELF loader would, then jumps to its entry on
 * the stack the kernel built for the loader (argv, envp and the auxiliary
 * vector, its program entries rewritten to the helper's). The helper's
 * pages are then the page cache's pages of nsbox's file, shared with every
 * other start, instead of 6 MB copied into a memfd per start
 * (cmd/internal/helper says what that costs).
 *
 * The launcher writes the helper's offset in nsbox's file into cfg below
 * before it seals the memfd. The offset must be page-aligned (make build
 * pads the embedded helper so that it is); the loader refuses otherwise.
 * Failures print one line and exit 127, before any of the helper ran.
 *
 * No libc: raw x86-64 system calls, no relocations, linked at a fixed
 * address far from the helper's (Makefile).
 */
#include <elf.h>
#include <stddef.h>
#include <sys/stat.h>

#define PAGE 4096UL
#define SYS_write 1
#define SYS_mmap 9
#define SYS_pread64 17
#define SYS_fstat 5
#define SYS_exit_group 231
#define PROT_READ 1
#define PROT_WRITE 2
#define PROT_EXEC 4
#define MAP_PRIVATE 0x02
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define MAP_FIXED_NOREPLACE 0x100000
#define EXE_FD 3
#define MAX_PHNUM 16

/* cfg is found by its magic and filled in by the launcher (helper.go). */
static volatile const struct {
	char magic[8];
	unsigned long offset;
} cfg __attribute__((used)) = {{'N', 'S', 'B', 'X', 'L', 'D', 'R', '1'}, 0};

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

static void die(const char *msg)
{
	static const char prefix[] = "nsbox-helper-loader: ";
	size_t n = 0;
	while (msg[n])
		n++;
	sys6(SYS_write, 2, (long)prefix, sizeof prefix - 1, 0, 0, 0);
	sys6(SYS_write, 2, (long)msg, n, 0, 0, 0);
	sys6(SYS_write, 2, (long)"\n", 1, 0, 0, 0);
	sys6(SYS_exit_group, 127, 0, 0, 0, 0, 0);
	for (;;)
		;
}

static int pread_full(void *buf, unsigned long n, unsigned long off)
{
	while (n > 0) {
		long r = sys6(SYS_pread64, EXE_FD, (long)buf, n, off, 0, 0);
		if (r == -4) /* EINTR */
			continue;
		if (r <= 0)
			return -1;
		buf = (char *)buf + r;
		n -= r;
		off += r;
	}
	return 0;
}

static int is_err(long r) { return r < 0 && r > -4096; }

/* map_segment maps one PT_LOAD as binfmt_elf does: the file's pages, then
 * anonymous zero pages for the rest of its memory size. */
static void map_segment(const Elf64_Phdr *ph, unsigned long base)
{
	int prot = (ph->p_flags & PF_R ? PROT_READ : 0) | (ph->p_flags & PF_W ? PROT_WRITE : 0) |
		   (ph->p_flags & PF_X ? PROT_EXEC : 0);
	unsigned long start = ph->p_vaddr & ~(PAGE - 1), pad = ph->p_vaddr - start;
	unsigned long fend = ph->p_vaddr + ph->p_filesz, mend = ph->p_vaddr + ph->p_memsz;
	if (ph->p_filesz > 0) {
		long r = sys6(SYS_mmap, start, ph->p_filesz + pad, prot, MAP_PRIVATE | MAP_FIXED_NOREPLACE, EXE_FD,
			      base + ph->p_offset - pad);
		if (is_err(r) || (unsigned long)r != start)
			die("map a segment of the helper");
	}
	unsigned long zstart = (fend + PAGE - 1) & ~(PAGE - 1);
	if (mend > fend && (ph->p_flags & PF_W)) {
		/* The file page's bytes past p_filesz are the next data's: zero them. */
		for (volatile char *p = (char *)fend; (unsigned long)p < zstart && (unsigned long)p < mend; p++)
			*p = 0;
	}
	if (mend > zstart) {
		long r = sys6(SYS_mmap, zstart, mend - zstart, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
			      0);
		if (is_err(r) || (unsigned long)r != zstart)
			die("map the helper's zeroed memory");
	}
}

__attribute__((noreturn, used)) void load(unsigned long *sp)
{
	unsigned long base = cfg.offset;
	if (base == 0 || base % PAGE != 0)
		die("no page-aligned helper offset (a loader not prepared by nsbox)");
	/* fd 3 must be what the launcher passes: a file only root can write
	 * (cmd/internal/helper onlyRootWrites), never whatever else a process
	 * that runs this program again might hold there. */
	struct stat st;
	if (is_err(sys6(SYS_fstat, EXE_FD, (long)&st, 0, 0, 0, 0)) || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & 022) != 0)
		die("fd 3 is not nsbox's root-owned file");
	Elf64_Ehdr eh;
	if (pread_full(&eh, sizeof eh, base) < 0)
		die("read the helper's ELF header");
	if (eh.e_ident[EI_MAG0] != ELFMAG0 || eh.e_ident[EI_MAG1] != ELFMAG1 || eh.e_ident[EI_MAG2] != ELFMAG2 ||
	    eh.e_ident[EI_MAG3] != ELFMAG3 || eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_type != ET_EXEC ||
	    eh.e_machine != EM_X86_64 || eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
	    eh.e_phnum > MAX_PHNUM)
		die("not a static x86-64 helper program at the offset");
	Elf64_Phdr ph[MAX_PHNUM];
	if (pread_full(ph, eh.e_phnum * sizeof(Elf64_Phdr), base + eh.e_phoff) < 0)
		die("read the helper's program headers");
	unsigned long phdr = 0;
	for (int i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type == PT_INTERP)
			die("the helper is not static");
		if (ph[i].p_type != PT_LOAD)
			continue;
		if (ph[i].p_vaddr % PAGE != ph[i].p_offset % PAGE || ph[i].p_filesz > ph[i].p_memsz)
			die("a misaligned segment in the helper");
		if (eh.e_phoff >= ph[i].p_offset && eh.e_phoff < ph[i].p_offset + ph[i].p_filesz)
			phdr = ph[i].p_vaddr + eh.e_phoff - ph[i].p_offset;
		map_segment(&ph[i], base);
	}
	if (phdr == 0)
		die("the helper's program headers are not in a segment");

	/* sp: argc, argv..., NULL, envp..., NULL, auxv pairs up to AT_NULL. */
	unsigned long *p = sp + 1 + sp[0] + 1;
	while (*p)
		p++;
	for (p++; p[0] != AT_NULL; p += 2) {
		switch (p[0]) {
		case AT_PHDR:
			p[1] = phdr;
			break;
		case AT_PHENT:
			p[1] = sizeof(Elf64_Phdr);
			break;
		case AT_PHNUM:
			p[1] = eh.e_phnum;
			break;
		case AT_ENTRY:
			p[1] = eh.e_entry;
			break;
		case AT_BASE:
			p[1] = 0;
			break;
		}
	}
	__asm__ volatile("mov %0, %%rsp\n\txor %%edx, %%edx\n\tjmp *%1" : : "r"(sp), "r"(eh.e_entry) : "memory");
	__builtin_unreachable();
}

/* _start hands load the kernel's initial stack pointer. */
__asm__(".text\n.global _start\n_start:\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall load\n\thlt\n");
