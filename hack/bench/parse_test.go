package main

import (
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
	"gotest.tools/v3/assert"
)

func TestQuantileAndMedian(t *testing.T) {
	vs := []float64{5, 1, 4, 2, 3}
	m, ok := median(vs)
	assert.Assert(t, ok)
	assert.Equal(t, m, 3.0)
	m, _ = median([]float64{4, 1, 3, 2})
	assert.Equal(t, m, 2.5)
	p99, _ := quantile(vs, 0.99)
	assert.Equal(t, p99, 5.0)
	p50, _ := quantile(vs, 0.5)
	assert.Equal(t, p50, 3.0)
	_, ok = median(nil)
	assert.Assert(t, !ok)
	assert.DeepEqual(t, vs, []float64{5, 1, 4, 2, 3}) // inputs are not sorted in place
}

func TestAlternateRotatesOrder(t *testing.T) {
	a, b, c := &contender{Name: "a"}, &contender{Name: "b"}, &contender{Name: "c", Missing: "no"}
	var order []string
	alternate(2, []*contender{a, b, c}, func(k *contender) (float64, error) {
		order = append(order, k.Name)
		return 1, nil
	})
	assert.DeepEqual(t, order, []string{"a", "b", "b", "a"})
	assert.Equal(t, len(c.Values), 0)
}

const sampleTrace = `100 1.000000 execve("./nsbox", ["./nsbox", "run"], 0x1 /* 1 var */) = 0
100 1.010000 socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0, [3, 4]) = 0
100 1.013000 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x1) = 103
100 1.013500 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM, child_tid=0x2}, 88) = 101
101 1.014000 clone(child_stack=NULL, flags=CLONE_VM|CLONE_PIDFD|CLONE_VFORK <unfinished ...>
102 1.014500 exit_group(0)   = ?
103 1.015000 unshare(CLONE_NEWUSER) = 0
103 1.016000 unshare(CLONE_NEWNS|CLONE_NEWPID) = 0
103 1.017000 clone(child_stack=0x7d6100, flags=CLONE_PARENT|SIGCHLD) = 104
103 1.017500 exit_group(0)   = ?
104 1.018000 mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL) = 0
105 1.020000 execve("/usr/bin/true", ["true"], 0x3 /* 1 var */) = 0
105 1.023000 exit_group(0)   = ?
104 1.023500 exit_group(0)   = ?
101 1.025000 exit_group(0)   = ?
`

func TestStartupPhases(t *testing.T) {
	ph, replayed, err := startupPhases(strings.Split(sampleTrace, "\n"))
	assert.NilError(t, err)
	assert.Assert(t, !replayed)
	assert.DeepEqual(t, tenths(ph), []float64{10, 3, 2, 1, 1, 1, 2, 3, 2})
}

// With the stage's calls interrupted by another process's lines, as they
// are when the launcher's threads run beside the stage, the markers are
// the same.
func TestStartupPhasesUnfinishedCalls(t *testing.T) {
	tr := strings.Replace(sampleTrace, "103 1.015000 unshare(CLONE_NEWUSER) = 0\n",
		"103 1.015000 unshare(CLONE_NEWUSER <unfinished ...>\n100 1.015010 futex(0x1, FUTEX_WAKE, 1) = 0\n103 1.015050 <... unshare resumed>) = 0\n", 1)
	tr = strings.Replace(tr, "103 1.016000 unshare(CLONE_NEWNS|CLONE_NEWPID) = 0\n",
		"103 1.016000 unshare(CLONE_NEWNS|CLONE_NEWPID <unfinished ...>\n103 1.016070 <... unshare resumed>) = 0\n", 1)
	assert.Assert(t, tr != sampleTrace)
	ph, _, err := startupPhases(strings.Split(tr, "\n"))
	assert.NilError(t, err)
	assert.DeepEqual(t, tenths(ph), []float64{10, 3, 2, 1, 1, 1, 2, 3, 2})
}

// A replayed start (strace's lines as this VM printed them): the stage is
// forked into its user namespace, PID 1 mounts with the new mount API.
const replayTrace = `200 1.000000 execve("./nsbox", ["./nsbox", "run", "--map", "single", "--", "true"], 0x1 /* 1 var */) = 0
200 1.002000 socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0, [3, 4]) = 0
200 1.003000 clone(child_stack=NULL, flags=CLONE_NEWUSER|SIGCHLD) = 201
201 1.003500 unshare(CLONE_NEWNS|CLONE_NEWCGROUP) = 0
201 1.005000 socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0, [5, 6]) = 0
201 1.006000 clone(child_stack=NULL, flags=CLONE_NEWNS|SIGCHLD) = 202
201 1.006200 unshare(CLONE_NEWPID) = 0
202 1.006300 unshare(CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWNET <unfinished ...>
201 1.006500 clone(child_stack=0x17ccab8, flags=CLONE_PARENT|SIGCHLD) = 203
202 1.006900 <... unshare resumed>) = 0
203 1.007000 open_tree(-100, "/", OPEN_TREE_CLONE|AT_RECURSIVE) = 7
203 1.009000 fork() = 2
204 1.009500 execve("/usr/local/bin/true", ["true"], 0x3 /* 1 var */) = -1 ENOENT (No such file or directory)
204 1.009600 execve("/usr/bin/true", ["true"], 0x3 /* 1 var */) = 0
204 1.010500 exit_group(0) = ?
203 1.011000 exit_group(0) = ?
200 1.012000 exit_group(0) = ?
`

func TestStartupPhasesReplayed(t *testing.T) {
	ph, replayed, err := startupPhases(strings.Split(replayTrace, "\n"))
	assert.NilError(t, err)
	assert.Assert(t, replayed)
	assert.DeepEqual(t, tenths(ph), []float64{2, 1, 0, 0.5, 2.5, 1, 2.5, 1, 1.5})
}

func TestParseStraceLineUnfinished(t *testing.T) {
	e, ok := parseStraceLine("24747 1796681809.981840 unshare(CLONE_NEWUSER <unfinished ...>")
	assert.Assert(t, ok)
	assert.Equal(t, e.Args, "CLONE_NEWUSER)")
	_, ok = parseStraceLine("24747 1796681809.981894 <... unshare resumed>) = 0 <0.000047>")
	assert.Assert(t, !ok)
}

// tenths is each phase's length in ms, rounded to a tenth.
func tenths(ph []phase) []float64 {
	var got []float64
	for _, p := range ph {
		got = append(got, float64(int(p.MS*10+0.5))/10)
	}
	return got
}

func TestStartupPhasesMissingMarker(t *testing.T) {
	_, _, err := startupPhases(strings.Split(sampleTrace, "\n")[:5])
	assert.ErrorContains(t, err, `lacks the "userns" marker`)
}

func TestParseStraceSummary(t *testing.T) {
	out := `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ------------------
 32.13    0.007766         215        36           nanosleep
  5.74    0.001388          12       114         2 rt_sigaction
------ ----------- ----------- --------- --------- ------------------
100.00    0.024170          84       150         2 total
`
	rows, total := parseStraceSummary(out)
	assert.Equal(t, total, 150)
	assert.DeepEqual(t, rows, []syscallCount{{"nanosleep", 36, 0.007766}, {"rt_sigaction", 114, 0.001388}})
}

func TestParseInitTrace(t *testing.T) {
	out := "init runtime @0.010 ms, 2.500 ms clock, 0 bytes, 0 allocs\nnsbox d0eeb17\ninit os @2.6 ms, 0.40 ms clock, 400 bytes, 6 allocs\n"
	assert.DeepEqual(t, parseInitTrace(out), []initRecord{{"runtime", 0.01, 2.5}, {"os", 2.6, 0.4}})
}

func TestParseIperf(t *testing.T) {
	v, err := parseIperf([]byte(`{"end":{"sum_received":{"bits_per_second":7.1e9}}}`))
	assert.NilError(t, err)
	assert.Equal(t, v, 7.1)
	_, err = parseIperf([]byte(`{"error":"unable to connect to server"}`))
	assert.ErrorContains(t, err, "unable to connect")
	_, err = parseIperf([]byte(`{}`))
	assert.ErrorContains(t, err, "no received throughput")
}

func TestParseMicros(t *testing.T) {
	v, err := parseMicros("12.5\n30\n")
	assert.NilError(t, err)
	assert.DeepEqual(t, v, []float64{12.5, 30})
	_, err = parseMicros("12\nNaN\n")
	assert.ErrorContains(t, err, "not a duration")
	_, err = parseMicros("")
	assert.ErrorContains(t, err, "no durations")
}

func TestIsUnknownFlag(t *testing.T) {
	assert.Assert(t, isUnknownFlag("nsbox: run: unknown flag: --net; fix: see nsbox help run"))
	assert.Assert(t, isUnknownFlag("nsbox: run: unknown shorthand flag: 'p' in -p; fix: …"))
	assert.Assert(t, !isUnknownFlag("nsbox: --net user: /dev/net/tun: permission denied; fix: …"))
}

func FuzzParseStraceLine(f *testing.F) {
	for _, l := range strings.Split(sampleTrace, "\n") {
		f.Add(l)
	}
	f.Add("12 NaN execve(")
	f.Add("-1 1.0 x(")
	f.Fuzz(func(t *testing.T, line string) {
		e, ok := parseStraceLine(line)
		if ok && (e.PID <= 0 || e.Name == "" || e.Time < 0 || e.Time != e.Time) {
			t.Fatalf("accepted a bad line %q as %+v", line, e)
		}
	})
}

func FuzzStartupPhases(f *testing.F) {
	f.Add(sampleTrace)
	f.Add(replayTrace)
	f.Fuzz(func(t *testing.T, trace string) {
		ph, _, err := startupPhases(strings.Split(trace, "\n"))
		if err == nil && len(ph) != 9 {
			t.Fatalf("%d phases", len(ph))
		}
	})
}

func FuzzParseOutputs(f *testing.F) {
	f.Add("init runtime @0.010 ms, 2.500 ms clock, 0 bytes, 0 allocs", "  5.74    0.001388          12       114         2 rt_sigaction", "12.5\n3")
	f.Fuzz(func(t *testing.T, inits, summary, micros string) {
		for _, r := range parseInitTrace(inits) {
			if r.StartMS < 0 || r.ClockMS < 0 {
				t.Fatalf("negative init record %+v", r)
			}
		}
		rows, _ := parseStraceSummary(summary)
		for _, r := range rows {
			if r.Calls < 0 {
				t.Fatalf("negative calls %+v", r)
			}
		}
		if vs, err := parseMicros(micros); err == nil {
			for _, v := range vs {
				if v <= 0 || v != v {
					t.Fatalf("bad duration %v", v)
				}
			}
		}
		parseIperf([]byte(micros))
	})
}

func TestDNSResponderAnswersTheQuery(t *testing.T) {
	q := dnsQuery(0x1234, dnsBenchName)
	var p dnsmessage.Parser
	h, err := p.Start(q)
	assert.NilError(t, err)
	assert.Equal(t, h.ID, uint16(0x1234))
	qs, err := p.AllQuestions()
	assert.NilError(t, err)
	assert.Equal(t, len(qs), 1)
	assert.Equal(t, qs[0].Name.String(), dnsBenchName)

	var m dnsmessage.Message
	assert.NilError(t, m.Unpack(dnsAnswer(q)))
	assert.Assert(t, m.Header.Response)
	assert.Equal(t, m.Header.ID, uint16(0x1234))
	assert.Equal(t, len(m.Answers), 1)
	assert.Equal(t, m.Answers[0].Header.Name.String(), dnsBenchName)
	assert.DeepEqual(t, m.Answers[0].Body.(*dnsmessage.AResource).A, [4]byte{192, 0, 2, 1})

	assert.Assert(t, dnsAnswer(q[:len(q)-2]) == nil) // cut short
	assert.Assert(t, dnsAnswer(q[:11]) == nil)
}

// TestParseStraceLinePaddedPID: strace pads a pid below 10000 to five
// columns, which once made every trace of a machine with small pids fail.
func TestParseStraceLinePaddedPID(t *testing.T) {
	e, ok := parseStraceLine("9684  1796654728.844216 clone(child_stack=NULL, flags=SIGCHLD) = 9685")
	assert.Assert(t, ok)
	assert.Equal(t, e.PID, 9684)
	assert.Equal(t, e.Name, "clone")
	assert.Equal(t, e.Time, 1796654728.844216)
	_, ok = parseStraceLine("9684  1796654728.844216")
	assert.Assert(t, !ok)
}
