// Command align prints how many bytes more of padding would move the
// helper program embedded in an nsbox binary to a page boundary of the
// binary's file (0 when it is on one): make build links nsbox, runs
// align, and links again with the padding (helper.alignPad), so that the
// helper's loader can map the helper from nsbox's file instead of copying
// it (cmd/internal/helper).
//
//	align NSBOX HELPER
package main

import (
	"bytes"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: align NSBOX HELPER")
		os.Exit(2)
	}
	need, err := padding(os.Args[1], os.Args[2], os.Getpagesize())
	if err != nil {
		fmt.Fprintln(os.Stderr, "align:", err)
		os.Exit(1)
	}
	fmt.Println(need)
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
