package sandbox

import (
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// The walk of CopyIn and CopyOut is serial: it lists each directory,
// checks each entry and creates its copy, by descriptor (live_copy.go).
// The data of the regular files it finds is copied by workers meanwhile.
// The copy itself is the kernel's (copyData: copy_file_range, or
// sendfile between two filesystems), and of a file in the page cache
// that is the kernel copying memory. Into a memory-backed filesystem
// (tmpfs, ramfs) that is all it is, and a worker per core copies a tree
// of many files as fast as the cores allow, where cp -a uses one. Into a
// disk's filesystem, writers at once contend for its journal and block
// allocation: on ext4 here, two workers took 1.4-1.8 s for a 1 GiB tree
// of 1 MiB files where one took 0.82-1.03 s and cp -a 0.81-1.43 s (six
// alternating rounds, sync between). There one worker copies while the
// walk goes on.
//
// Only the data and the metadata of an open file are the workers': every
// name is created by the walk, so a directory's own times, set once its
// entries exist, are final (writing into a file does not change its
// directory). What a worker holds is bounded: two descriptors per file,
// for at most 2×workers files at a time.

// maxCopyWorkers bounds the workers of one copy.
const maxCopyWorkers = 4

// fileData is a regular file whose data is to be copied: src open for
// reading, dst created for writing. Whoever holds it closes both.
type fileData struct {
	src, dst    int
	st          unix.Stat_t // src's, for dst's mode and times
	rel, dstRel string      // how errors name src and dst
}

// close closes both descriptors.
func (f fileData) close() {
	unix.Close(f.src)
	unix.Close(f.dst)
}

// run copies the data, gives dst src's mode and times, and closes both.
func (f fileData) run() error {
	defer f.close()
	if err := copyData(f.dst, f.src); err != nil {
		return fmt.Errorf("copy %s to %s: %w", f.rel, f.dstRel, err)
	}
	return setMeta(f.dst, &f.st, f.dstRel)
}

// copyChunk is what one copy_file_range or sendfile call asks for: the
// most the kernel moves in one call (MAX_RW_COUNT, 2 GiB less a page),
// so that a file takes one call and the one that says it is done.
const copyChunk = 0x7ffff000

// copyData copies what is left of src, from its offset to its end, to
// dst, at its offset; it stops where src ends at the time (a file that
// grows while it is copied is copied as far as it has grown).
//
// The kernel moves the data. copy_file_range first: between two files
// of one filesystem (a sandbox's view of a host directory is one), it
// is what cp -a does, and a filesystem that can share the blocks
// (btrfs, XFS) makes the copy a reflink. Between filesystems (ext4 to
// the sandbox's tmpfs) it fails with EXDEV, and sendfile moves the
// pages from src's page cache to dst without a copy through user space,
// where cp -a reads and writes 128 KiB at a time. A file that neither
// can move (a source that returns nothing to either while read(2) does,
// as some kernels' procfs and sysfs files do) is read and written.
func copyData(dst, src int) error {
	moved := false
	for {
		n, err := unix.CopyFileRange(src, nil, dst, nil, copyChunk, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if moved || !noCopyRange(err) {
				return err
			}
			break
		}
		if n == 0 {
			if moved {
				return nil
			}
			break // an empty file, or one copy_file_range cannot read
		}
		moved = true
	}
	for {
		n, err := unix.Sendfile(dst, src, nil, copyChunk)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if moved || (err != unix.EINVAL && err != unix.ENOSYS) {
				return err
			}
			break
		}
		if n == 0 {
			if moved {
				return nil
			}
			break
		}
		moved = true
	}
	return readWrite(dst, src)
}

// noCopyRange tells the errors of a copy_file_range that cannot copy
// between these two files (another filesystem, a kernel or filesystem
// without it) from those of the files themselves.
func noCopyRange(err error) bool {
	switch err {
	case unix.EXDEV, unix.EINVAL, unix.ENOSYS, unix.EOPNOTSUPP, unix.EPERM, unix.EIO:
		return true
	}
	return false
}

// rwBuffers holds the buffers of readWrite, the last way to copy: rare,
// and bounded by the workers that can be in it at once.
var rwBuffers = sync.Pool{New: func() any { return new([256 << 10]byte) }}

// readWrite copies src to dst through a buffer, until src's end.
func readWrite(dst, src int) error {
	buf := rwBuffers.Get().(*[256 << 10]byte)
	defer rwBuffers.Put(buf)
	for {
		n, err := unix.Read(src, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		for w := 0; w < n; {
			k, err := unix.Write(dst, buf[w:n])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			w += k
		}
	}
}

// filePool runs fileCopies on its workers. A nil *filePool runs each one
// at once, in the caller (one core, or nothing to share it with).
type filePool struct {
	queue chan fileData
	wg    sync.WaitGroup
	mu    sync.Mutex // guards err
	err   error      // the first failure; later copies are dropped
}

// copyWorkers is how many workers copy into the directory ddir: one per
// core (at most maxCopyWorkers) on a memory-backed filesystem, else one;
// none with a single core (the walk copies each file itself).
func copyWorkers(ddir int) int {
	n := min(runtime.GOMAXPROCS(0), maxCopyWorkers)
	if n < 2 {
		return 0
	}
	var fs unix.Statfs_t
	if unix.Fstatfs(ddir, &fs) == nil && (fs.Type == unix.TMPFS_MAGIC || fs.Type == unix.RAMFS_MAGIC) {
		return n
	}
	return 1
}

// newFilePool starts n workers; nil for none.
func newFilePool(n int) *filePool {
	if n < 1 {
		return nil
	}
	p := &filePool{queue: make(chan fileData, n)}
	p.wg.Add(n)
	for range n {
		go p.work()
	}
	return p
}

func (p *filePool) work() {
	defer p.wg.Done()
	for f := range p.queue {
		if p.failed() != nil {
			f.close()
			continue
		}
		if err := f.run(); err != nil {
			p.mu.Lock()
			if p.err == nil {
				p.err = err
			}
			p.mu.Unlock()
		}
	}
}

// failed returns the first failure of a copy so far.
func (p *filePool) failed() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// copy runs f on a worker, or at once without a pool; it takes f's
// files. It returns the first failure so far, so that the walk stops.
func (p *filePool) copy(f fileData) error {
	if p == nil {
		return f.run()
	}
	if err := p.failed(); err != nil {
		f.close()
		return err
	}
	p.queue <- f
	return nil
}

// wait lets the workers finish what is queued, stops them, and returns
// the first failure.
func (p *filePool) wait() error {
	if p == nil {
		return nil
	}
	close(p.queue)
	p.wg.Wait()
	return p.err
}
