// Command align prints how many bytes more of padding would move the
// helper program embedded in an nsbox binary to a page boundary of the
// binary's file (0 when it is on one): make build links nsbox, runs
// align, and links again with the padding (helper.alignPad), so that the
// helper's loader can map the helper from nsbox's file instead of copying
// it (cmd/internal/helper).
//
// With "mark", once the helper is on a page boundary, it writes where the
// helper and its loader are in the binary into the record that the ELF
// constructor reads to start the helper before the Go runtime
// (cmd/internal/helper/early.c); a binary without the record (no cgo, not
// x86-64) is left as it is.
//
//	align NSBOX HELPER
//	align mark NSBOX HELPER LOADER
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

func main() {
	var err error
	switch {
	case len(os.Args) == 3:
		var need int
		if need, err = padding(os.Args[1], os.Args[2], os.Getpagesize()); err == nil {
			fmt.Println(need)
		}
	case len(os.Args) == 5 && os.Args[1] == "mark":
		err = mark(os.Args[2], os.Args[3], os.Args[4], os.Getpagesize())
	default:
		fmt.Fprintln(os.Stderr, "usage: align NSBOX HELPER | align mark NSBOX HELPER LOADER")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "align:", err)
		os.Exit(1)
	}
}

// padding is the bytes to add before the helper's copy in the binary to
// put it on a page boundary.
func padding(binary, helper string, page int) (int, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return 0, err
	}
	h, err := os.ReadFile(helper)
	if err != nil {
		return 0, err
	}
	off := bytes.Index(bin, h)
	if off < 0 {
		return 0, fmt.Errorf("%s is not embedded in %s", helper, binary)
	}
	return (page - off%page) % page, nil
}

// recordMagic starts early.c's record, followed by three zero uint64s
// until marked: the helper's offset, the loader's offset and length.
const recordMagic = "NSBXHWR1"

// mark fills in the binary's record of where the helper (page-aligned)
// and the loader are in it.
func mark(binaryPath, helper, loader string, page int) error {
	bin, err := os.ReadFile(binaryPath)
	if err != nil {
		return err
	}
	empty := append([]byte(recordMagic), make([]byte, 24)...)
	at := bytes.Index(bin, empty)
	if at < 0 {
		return nil // a build whose constructor starts no helper
	}
	if bytes.Index(bin[at+1:], empty) >= 0 {
		return errors.New("two helper records in " + binaryPath)
	}
	h, err := os.ReadFile(helper)
	if err != nil {
		return err
	}
	l, err := os.ReadFile(loader)
	if err != nil {
		return err
	}
	hoff, loff := bytes.Index(bin, h), bytes.Index(bin, l)
	if hoff < 0 || hoff%page != 0 || loff < 0 {
		return fmt.Errorf("%s: the helper is not page-aligned in it, or the loader not in it", binaryPath)
	}
	rec := bin[at+len(recordMagic) : at+len(empty)]
	binary.LittleEndian.PutUint64(rec[0:], uint64(hoff))
	binary.LittleEndian.PutUint64(rec[8:], uint64(loff))
	binary.LittleEndian.PutUint64(rec[16:], uint64(len(l)))
	f, err := os.OpenFile(binaryPath, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(rec, int64(at+len(recordMagic))); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
