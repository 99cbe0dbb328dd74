package sandbox

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/nsbox/nsbox/internal/remedy"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/cgroup"
	"github.com/nsbox/nsbox/sandbox/internal/stage"
)

// Limits bounds the resources of the command.
type Limits struct {
	// Rlimits are set with setrlimit(2) in the command's process before
	// exec, so they apply to it and everything it starts.
	Rlimits []Rlimit `json:"rlimits,omitempty"`
	// Memory (bytes), PIDs and CPUs (cores, fractional) limit the whole
	// sandbox through a cgroup v2 of its own, created under the caller's
	// cgroup; that needs a delegated cgroup v2 subtree (a systemd user
	// session) whose controllers include memory, pids or cpu (a hybrid
	// host binds them to cgroup v1: no limits there). Zero means no limit.
	Memory int64   `json:"memory,omitempty"`
	PIDs   int64   `json:"pids,omitempty"`
	CPUs   float64 `json:"cpus,omitempty"`
	// OwnCgroup gives the sandbox a cgroup v2 of its own also without
	// Memory, PIDs or CPUs (they imply one): Sandbox.Pause then freezes
	// it (cgroup.freeze) instead of stopping its processes with signals,
	// and killing it kills every process in it. It needs a delegated
	// cgroup v2 subtree but no controller, so it works on hybrid hosts.
	// The launcher then stays to remove the cgroup once the sandbox ends.
	OwnCgroup bool `json:"ownCgroup,omitempty"`
}

// Rlimit is one resource limit, as prlimit(1) names them.
type Rlimit struct {
	Name string `json:"name"` // "nofile", "nproc", … (rlimitNames)
	Soft uint64 `json:"soft"` // math.MaxUint64 (RLIM_INFINITY) for none
	Hard uint64 `json:"hard"`
}

// rlimInfinity is "unlimited".
const rlimInfinity = math.MaxUint64

// rlimitNames returns prlimit(1)'s names and the resource numbers of this
// architecture (golang.org/x/sys/unix). A function: a package-level map is
// built at every start of nsbox, which only --rlimit needs.
func rlimitNames() map[string]int {
	return map[string]int{
		"cpu": unix.RLIMIT_CPU, "fsize": unix.RLIMIT_FSIZE, "data": unix.RLIMIT_DATA,
		"stack": unix.RLIMIT_STACK, "core": unix.RLIMIT_CORE, "rss": unix.RLIMIT_RSS,
		"nproc": unix.RLIMIT_NPROC, "nofile": unix.RLIMIT_NOFILE, "memlock": unix.RLIMIT_MEMLOCK,
		"as": unix.RLIMIT_AS, "locks": unix.RLIMIT_LOCKS, "sigpending": unix.RLIMIT_SIGPENDING,
		"msgqueue": unix.RLIMIT_MSGQUEUE, "nice": unix.RLIMIT_NICE, "rtprio": unix.RLIMIT_RTPRIO,
		"rttime": unix.RLIMIT_RTTIME,
	}
}

// ParseRlimit reads NAME=SOFT[:HARD]: NAME as prlimit(1) spells
// it (nofile, nproc, …; "RLIMIT_" and case are ignored), SOFT and HARD
// decimal or "unlimited"; a missing HARD equals SOFT.
func ParseRlimit(s string) (Rlimit, error) {
	name, val, ok := strings.Cut(s, "=")
	if !ok {
		return Rlimit{}, fmt.Errorf("%q is not NAME=SOFT[:HARD]; fix: e.g. nofile=1024:4096", s)
	}
	name = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(name)), "rlimit_")
	if _, ok := rlimitNames()[name]; !ok {
		return Rlimit{}, fmt.Errorf("unknown resource %q; fix: use one of as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack", name)
	}
	softS, hardS, hasHard := strings.Cut(val, ":")
	soft, err := parseRlimitValue(softS)
	if err != nil {
		return Rlimit{}, fmt.Errorf("%s soft limit: %w", name, err)
	}
	hard := soft
	if hasHard {
		if hard, err = parseRlimitValue(hardS); err != nil {
			return Rlimit{}, fmt.Errorf("%s hard limit: %w", name, err)
		}
	}
	if soft > hard {
		return Rlimit{}, fmt.Errorf("%s: soft limit %s above hard limit %s", name, softS, hardS)
	}
	return Rlimit{Name: name, Soft: soft, Hard: hard}, nil
}

func parseRlimitValue(s string) (uint64, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "unlimited", "infinity", "inf":
		return rlimInfinity, nil
	}
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number or \"unlimited\"", s)
	}
	return v, nil
}

// validate checks the limits against what this process may grant: no
// process in a user namespace may raise a hard limit (that needs
// CAP_SYS_RESOURCE in the initial namespace).
func (l *Limits) validate() error {
	for i, r := range l.Rlimits {
		field := fmt.Sprintf("Limits.Rlimits[%d]", i)
		res, ok := rlimitNames()[r.Name]
		if !ok {
			return &SpecError{Field: field, Problem: fmt.Sprintf("unknown resource %q", r.Name)}
		}
		if r.Soft > r.Hard {
			return &SpecError{Field: field, Value: r.Name, Problem: "soft limit above hard limit"}
		}
		var cur unix.Rlimit
		if err := unix.Getrlimit(res, &cur); err == nil && r.Hard > cur.Max {
			return &SpecError{Field: field, Value: r.Name,
				Problem: fmt.Sprintf("hard limit %s is above nsbox's own (%s), which a sandbox cannot raise", rlimitText(r.Hard), rlimitText(cur.Max)),
				Fix:     remedy.Hint{Kind: remedy.Text, Arg: "lower it, or raise it before starting nsbox (ulimit -H)"}}
		}
	}
	for _, v := range []struct {
		field    string
		negative bool
	}{{"Limits.Memory", l.Memory < 0}, {"Limits.PIDs", l.PIDs < 0}, {"Limits.CPUs", l.CPUs < 0}} {
		if v.negative {
			return &SpecError{Field: v.field, Problem: "must not be negative"}
		}
	}
	// NaN compares false with everything, so it must be asked for by
	// name; a count above the kernel's CPU limit is a typo (1e300 would
	// overflow the quota to 1% of a CPU).
	if math.IsNaN(l.CPUs) || math.IsInf(l.CPUs, 0) || l.CPUs > maxCPUs {
		return &SpecError{Field: "Limits.CPUs", Value: fmt.Sprint(l.CPUs), Problem: "not a number of CPUs",
			Fix: remedy.Hint{Kind: remedy.Text, Arg: fmt.Sprintf("give a count from 0.01 to %d, fractions allowed (e.g. 1.5)", maxCPUs)}}
	}
	if l.CPUs > 0 && l.CPUs < 0.01 {
		return &SpecError{Field: "Limits.CPUs", Value: fmt.Sprint(l.CPUs), Problem: "below the smallest limit the kernel takes (1% of a CPU)",
			Fix: remedy.Hint{Kind: remedy.Text, Arg: "give at least 0.01"}}
	}
	if _, err := l.cgroupParent(); err != nil {
		return err
	}
	return nil
}

// maxCPUs is the largest Limits.CPUs accepted: Linux's NR_CPUS limit.
const maxCPUs = 8192

func rlimitText(v uint64) string {
	if v == rlimInfinity {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

func (l *Limits) records() []stage.Rlimit {
	var r []stage.Rlimit
	for _, x := range l.Rlimits {
		r = append(r, stage.Rlimit{Resource: rlimitNames()[x.Name], Soft: x.Soft, Hard: x.Hard})
	}
	return r
}

// cgroupLimits are the limits a cgroup of the sandbox's own enforces.
func (l *Limits) cgroupLimits() cgroup.Limits {
	return cgroup.Limits{Memory: l.Memory, PIDs: l.PIDs, CPUs: l.CPUs}
}

// cgroupParent returns the delegated cgroup the sandbox's own goes under,
// "" when it gets none; a SpecError naming the field when it cannot have
// one.
func (l *Limits) cgroupParent() (string, error) {
	ctrl := l.cgroupLimits().Controllers()
	if len(ctrl) == 0 && !l.OwnCgroup {
		return "", nil
	}
	parent, err := cgroup.Check(ctrl)
	if err != nil {
		field := "Limits"
		if len(ctrl) == 0 {
			field = "Limits.OwnCgroup"
		}
		return "", &SpecError{Field: field, Err: err}
	}
	return parent, nil
}

// cgroup creates the sandbox's cgroup when the limits ask for one; nil
// (whose Add and Remove do nothing) when they do not.
func (l *Limits) cgroup() (*cgroup.Group, error) {
	parent, err := l.cgroupParent()
	if parent == "" || err != nil {
		return nil, err
	}
	return cgroup.New(l.cgroupLimits(), parent)
}
