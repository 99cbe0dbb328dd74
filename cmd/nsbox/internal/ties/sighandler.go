package ties

// The forwarded signals' handler: a few lines of C that put each signal
// in a ring, in the order they come, and once the command runs (Take)
// also write a byte to a pipe, which Go reads through its poller to
// empty the ring.
//
// signal.Notify enables each signal by a round trip to a thread the
// runtime locks for the purpose, and delivers through another thread
// parked in a futex: two more threads and 14 hand-offs for the seven
// signals, 0.4 ms of CPU and 17 voluntary context switches per
// `nsbox run` (300 alternating starts). Blocking the signals and reading
// a signalfd, as bubblewrap does, cannot work in a Go program: the
// runtime unblocks SIGHUP, SIGINT, SIGQUIT and SIGTERM on every thread
// it starts (runtime.blockableSig), whatever mask the program started
// with.
//
// The rules the handler obeys: it runs on the signal stack Go gives each
// thread (SA_ONSTACK), as the runtime requires of a foreign handler; it
// uses atomics and write(2) only, on a non-blocking pipe, and keeps
// errno; the pipe is made only at Take, so that until then nsbox opens
// no descriptor a command line could name (--info-fd 9); a child
// that Go forks gets the default action back (the runtime resets every
// signal it had a handler for before exec), and the pipe is
// close-on-exec, so nothing of it reaches the sandbox or a helper.
// SIGWINCH is passed on to the runtime's own handler too (the handler it
// replaced), which ignores it unless a signal.Notify wants it: the
// terminal relay of --tty does (sandbox/internal/tty). The other six are
// not: the runtime would end the process on them.

/*
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

// The caught signals, in the order they came: handlers on any thread
// reserve a slot by compare-and-swap on tail and fill it; the one reader
// (nsbox_sig_next) empties slots from head. 0 is an empty slot.
#define NSBOX_SIG_RING 64
static unsigned char nsbox_sig_ring[NSBOX_SIG_RING];
static unsigned nsbox_sig_head, nsbox_sig_tail;
// The pipe a byte is written to after each signal, once the reader
// waits on it (nsbox_sig_wake); -1 before.
static int nsbox_sig_pipe = -1;
static struct sigaction nsbox_sig_prev[_NSIG];

static void nsbox_sig_handler(int sig, siginfo_t *info, void *ctx)
{
	int saved = errno;
	unsigned t = __atomic_load_n(&nsbox_sig_tail, __ATOMIC_SEQ_CST);
	do {
		if (t - __atomic_load_n(&nsbox_sig_head, __ATOMIC_SEQ_CST) >= NSBOX_SIG_RING)
			goto chain; // full: dropped, as a full channel drops it for signal.Notify
	} while (!__atomic_compare_exchange_n(&nsbox_sig_tail, &t, t + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
	__atomic_store_n(&nsbox_sig_ring[t % NSBOX_SIG_RING], (unsigned char)sig, __ATOMIC_SEQ_CST);
	// After the slot is filled: a reader that set the pipe later
	// empties the ring after setting it, so it sees this signal.
	int fd = __atomic_load_n(&nsbox_sig_pipe, __ATOMIC_SEQ_CST);
	if (fd >= 0 && write(fd, "", 1) < 0) {
		// The pipe is full: the reader has wake-ups pending anyway.
	}
chain:
	errno = saved;
	if (sig == SIGWINCH && (nsbox_sig_prev[sig].sa_flags & SA_SIGINFO) != 0)
		nsbox_sig_prev[sig].sa_sigaction(sig, info, ctx);
}

// nsbox_sig_next takes the oldest caught signal, 0 if there is none (or
// its handler has not filled its slot yet: it writes to the pipe once it
// has).
static int nsbox_sig_next(void)
{
	unsigned h = __atomic_load_n(&nsbox_sig_head, __ATOMIC_SEQ_CST);
	unsigned char *slot = &nsbox_sig_ring[h % NSBOX_SIG_RING];
	int sig = __atomic_load_n(slot, __ATOMIC_SEQ_CST);
	if (sig == 0)
		return 0;
	__atomic_store_n(slot, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&nsbox_sig_head, h + 1, __ATOMIC_SEQ_CST);
	return sig;
}

// nsbox_sig_wake sets the pipe the handler writes to (-1: none).
static void nsbox_sig_wake(int fd)
{
	__atomic_store_n(&nsbox_sig_pipe, fd, __ATOMIC_SEQ_CST);
}

// nsbox_sig_catch installs the handler for the n signals in sigs, with
// an empty ring; 0, or the errno of the sigaction that failed (the ones
// before it are restored).
static int nsbox_sig_catch(const int *sigs, int n)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = nsbox_sig_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigfillset(&sa.sa_mask);
	memset(nsbox_sig_ring, 0, sizeof nsbox_sig_ring);
	nsbox_sig_head = nsbox_sig_tail = 0;
	for (int i = 0; i < n; i++) {
		if (sigaction(sigs[i], &sa, &nsbox_sig_prev[sigs[i]]) < 0) {
			int err = errno;
			while (i-- > 0)
				sigaction(sigs[i], &nsbox_sig_prev[sigs[i]], NULL);
			return err;
		}
	}
	return 0;
}

// nsbox_sig_restore gives the n signals in sigs their handlers back.
static void nsbox_sig_restore(const int *sigs, int n)
{
	for (int i = 0; i < n; i++)
		sigaction(sigs[i], &nsbox_sig_prev[sigs[i]], NULL);
}
*/
import "C"

import (
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// forwarded are the signals nsbox passes on to the command.
var forwarded = []C.int{C.SIGINT, C.SIGTERM, C.SIGHUP, C.SIGQUIT, C.SIGUSR1, C.SIGUSR2, C.SIGWINCH}

// handler is the state of the one installed handler: at most one catch
// at a time (a process starts one sandbox from the CLI).
var handler struct {
	sync.Mutex
	installed bool
	r         *os.File // the pipe's read end, once relaying
	w         int
}

// catchInRing installs the handler, or reports false if a catch is
// already installed or the kernel refused (the caller then uses
// signal.Notify). No descriptor is opened yet: until the command runs,
// the signals wait in the ring, and the numbers of descriptors named on
// the command line (--info-fd 9) are still checked against the caller's
// alone.
func catchInRing() bool {
	handler.Lock()
	defer handler.Unlock()
	if handler.installed || C.nsbox_sig_catch(&forwarded[0], C.int(len(forwarded))) != 0 {
		return false
	}
	handler.installed = true
	return true
}

// relayRing passes the signals caught so far, then each one as it comes,
// to a new channel; without a pipe (the kernel refused one) only those
// caught so far.
func relayRing() chan os.Signal {
	ch := make(chan os.Signal, 16)
	handler.Lock()
	defer handler.Unlock()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		drainRing(ch)
		return ch
	}
	handler.r, handler.w = os.NewFile(uintptr(p[0]), "signals"), p[1]
	C.nsbox_sig_wake(C.int(p[1]))
	go relay(handler.r, ch)
	return ch
}

// relay empties the ring into ch, then again each time the handler
// writes to r, until r fails.
func relay(r *os.File, ch chan<- os.Signal) {
	var b [64]byte
	for {
		drainRing(ch)
		if _, err := r.Read(b[:]); err != nil {
			return
		}
	}
}

// drainRing passes the signals in the ring to ch, dropping those that
// find it full, as signal.Notify does.
func drainRing(ch chan<- os.Signal) {
	for s := C.nsbox_sig_next(); s != 0; s = C.nsbox_sig_next() {
		select {
		case ch <- syscall.Signal(s):
		default:
		}
	}
}

// releaseRing gives the signals the runtime's handlers back and closes
// the pipe, if any.
func releaseRing() {
	handler.Lock()
	defer handler.Unlock()
	if !handler.installed {
		return
	}
	C.nsbox_sig_restore(&forwarded[0], C.int(len(forwarded)))
	C.nsbox_sig_wake(-1)
	if handler.r != nil {
		handler.r.Close()
		unix.Close(handler.w)
		handler.r = nil
	}
	handler.installed = false
}
