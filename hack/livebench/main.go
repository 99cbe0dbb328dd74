// Command livebench times the live operations through the Go API, without
// the nsbox command's own start and state lookup (hack/bench-live.sh): it
// reads a running sandbox's record (nsbox inspect NAME, on stdin), looks
// it up with sandbox.Lookup and prints, one per line, "mount MS",
// "pause MS" and "resume MS" for N rounds of Mount, Pause and Resume
// (with an Unmount after each Mount, not timed).
//
// Usage: nsbox inspect NAME | livebench SRC N
//
// Built like nsbox (cgo, static), since the live operations re-execute
// this binary as the stage.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/nsbox/nsbox/sandbox"
)

func main() {
	sandbox.Init()
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: nsbox inspect NAME | livebench SRC N")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "livebench: N:", err)
		os.Exit(2)
	}
	var rec struct {
		Pid          int           `json:"pid"`
		PidStartTime uint64        `json:"pidStartTime"`
		Cgroup       string        `json:"cgroup"`
		Spec         *sandbox.Spec `json:"spec"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&rec); err != nil || rec.Spec == nil {
		fmt.Fprintln(os.Stderr, "livebench: read the record (nsbox inspect NAME):", err)
		os.Exit(1)
	}
	t := sandbox.TargetOf(rec.Spec, rec.Pid, rec.PidStartTime)
	t.Cgroup = rec.Cgroup // a sandbox with a cgroup of its own pauses with the freezer
	sb, err := sandbox.Lookup(t)
	check(err)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		check(sb.Mount(os.Args[1], "/tmp/livebench", sandbox.MountOptions{ReadOnly: true, Mkdir: true}))
		fmt.Printf("mount %.3f\n", ms(time.Since(t0)))
		check(sb.Unmount("/tmp/livebench"))
		t0 = time.Now()
		check(sb.Pause())
		fmt.Printf("pause %.3f\n", ms(time.Since(t0)))
		t0 = time.Now()
		check(sb.Resume())
		fmt.Printf("resume %.3f\n", ms(time.Since(t0)))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "livebench:", err)
		os.Exit(1)
	}
}
