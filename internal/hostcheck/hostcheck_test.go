package hostcheck

import (
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// fakeProc is a host's /proc and / as a map; missing names do not exist.
type fakeProc map[string]string

func (p fakeProc) read(name string) ([]byte, error) {
	s, ok := p[name]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return []byte(s), nil
}

// A plain host: userns allowed, no LSM, no filter, /proc uncovered.
var plainHost = fakeProc{
	"/proc/sys/user/max_user_namespaces": "63000\n",
	"/proc/sys/vm/memfd_noexec":          "0\n",
	"/proc/self/status":                  "Name:\tnsbox\nSeccomp:\t0\nSeccomp_filters:\t0\n",
	"/proc/self/mountinfo":               "22 1 0:21 / /proc rw,nosuid - proc proc rw\n30 22 0:30 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw\n",
}

// with returns p with the given files replaced or added.
func (p fakeProc) with(kv ...string) fakeProc {
	q := fakeProc{}
	for k, v := range p {
		q[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		q[kv[i]] = kv[i+1]
	}
	return q
}

const dockerMountinfo = "70 60 0:41 / /proc rw,nosuid - proc proc rw\n" +
	"46 70 0:41 /bus /proc/bus ro,nosuid - proc proc rw\n" +
	"49 70 0:41 /sys /proc/sys ro,nosuid - proc proc rw\n" +
	"50 70 0:47 / /proc/acpi ro - tmpfs tmpfs ro\n" +
	"51 70 0:42 /null /proc/keys rw,nosuid - tmpfs tmpfs rw\n" +
	"52 70 0:42 /null /proc/kcore rw,nosuid - tmpfs tmpfs rw\n"

func TestExplain(t *testing.T) {
	ubuntu := plainHost.with(
		"/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1\n",
		"/proc/self/attr/apparmor/current", "unconfined\n")
	docker := plainHost.with(
		"/.dockerenv", "",
		"/proc/self/status", "Name:\tnsbox\nSeccomp:\t2\nSeccomp_filters:\t1\n",
		"/proc/self/mountinfo", dockerMountinfo)
	dockerUnconfined := docker.with("/proc/self/status", "Seccomp:\t0\n")
	for _, tc := range []struct {
		name  string
		proc  fakeProc
		env   map[string]string
		step  Step
		errno syscall.Errno
		want  []string // substrings of the explanation; nil: none
	}{
		{name: "plain host explains nothing", proc: plainHost, step: StepSetup, errno: syscall.EPERM},
		{name: "plain host, proc", proc: plainHost, step: StepProc, errno: syscall.EPERM},
		{name: "other errno", proc: ubuntu, step: StepSetup, errno: syscall.EINVAL},
		{name: "max_user_namespaces 0", step: StepUserns, errno: syscall.ENOSPC,
			proc: plainHost.with("/proc/sys/user/max_user_namespaces", "0\n"),
			want: []string{"user.max_user_namespaces = 0", "sysctl -w user.max_user_namespaces=15000"}},
		{name: "user namespace limit reached", step: StepUserns, errno: syscall.ENOSPC, proc: plainHost,
			want: []string{"limit on user namespaces is reached", "= 63000"}},
		{name: "ENOSPC of a mount is not about namespaces", step: StepSetup, errno: syscall.ENOSPC, proc: plainHost},
		{name: "unprivileged_userns_clone 0", step: StepUserns, errno: syscall.EPERM,
			proc: plainHost.with("/proc/sys/kernel/unprivileged_userns_clone", "0\n"),
			want: []string{"kernel.unprivileged_userns_clone = 0", "sysctl -w kernel.unprivileged_userns_clone=1"}},
		{name: "apparmor restriction at a mount", proc: ubuntu, step: StepSetup, errno: syscall.EPERM,
			want: []string{"apparmor_restrict_unprivileged_userns = 1", "/opt/bin/nsbox",
				`profile nsbox /opt/bin/nsbox flags=(unconfined) {\n  userns,`, "> /etc/apparmor.d/nsbox && apparmor_parser -r /etc/apparmor.d/nsbox"}},
		{name: "apparmor restriction at the maps", proc: ubuntu, step: StepMaps, errno: syscall.EPERM,
			want: []string{"AppArmor restricts"}},
		{name: "apparmor restriction, old attr file", step: StepSetup, errno: syscall.EACCES,
			proc: plainHost.with("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1\n", "/proc/self/attr/current", "unconfined"),
			want: []string{"AppArmor restricts"}},
		{name: "apparmor demoted namespace", step: StepSetup, errno: syscall.EPERM,
			proc: ubuntu.with("/proc/self/attr/apparmor/current", "unprivileged_userns (enforce)\n"),
			want: []string{"AppArmor restricts"}},
		{name: "apparmor profile installed", step: StepSetup, errno: syscall.EPERM,
			proc: ubuntu.with("/proc/self/attr/apparmor/current", "nsbox (unconfined)\n")},
		{name: "apparmor restriction off", step: StepSetup, errno: syscall.EPERM,
			proc: ubuntu.with("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "0\n")},
		{name: "docker seccomp refuses unshare", proc: docker, step: StepUserns, errno: syscall.EPERM,
			want: []string{"seccomp filter refuses unshare", "Seccomp: 2", "--security-opt seccomp=unconfined"}},
		{name: "kubernetes seccomp", proc: docker, env: map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1"},
			step: StepUserns, errno: syscall.EPERM, want: []string{"seccompProfile.type: Unconfined"}},
		{name: "nsbox's own filter is not blamed past unshare", step: StepSetup, errno: syscall.EPERM,
			proc: plainHost.with("/proc/self/status", "Seccomp:\t2\n")},
		{name: "docker masked /proc", proc: dockerUnconfined, step: StepProc, errno: syscall.EPERM,
			want: []string{"/proc/bus, /proc/sys, /proc/acpi, /proc/keys and 1 more", "--security-opt systempaths=unconfined", "Namespaces.PID to false"}},
		{name: "kubernetes masked /proc", proc: dockerUnconfined, env: map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1"},
			step: StepProc, errno: syscall.EPERM, want: []string{"procMount: Unmasked"}},
		{name: "covered /proc outside a container", step: StepProc, errno: syscall.EPERM,
			proc: plainHost.with("/proc/self/mountinfo", "22 1 0:21 / /proc rw - proc proc rw\n23 22 0:21 /irq /proc/irq ro - proc proc rw\n"),
			want: []string{"(/proc/irq)", "set Namespaces.PID to false"}},
		{name: "docker-default apparmor denies mount", step: StepSetup, errno: syscall.EACCES,
			proc: dockerUnconfined.with("/proc/self/attr/current", "docker-default (enforce)"),
			want: []string{"docker-default (enforce)", "--security-opt apparmor=unconfined"}},
		{name: "memfd_noexec 2", step: StepMemfd, errno: syscall.EACCES,
			proc: plainHost.with("/proc/sys/vm/memfd_noexec", "2\n"),
			want: []string{"vm.memfd_noexec = 2", "sysctl -w vm.memfd_noexec=1"}},
		{name: "memfd EACCES otherwise", step: StepMemfd, errno: syscall.EACCES, proc: plainHost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			got := explain(tc.step, tc.errno, readHostFacts(tc.proc.read, getenv, "/opt/bin/nsbox"))
			if tc.want == nil {
				assert.Equal(t, got, "")
				return
			}
			for _, w := range tc.want {
				assert.Check(t, is.Contains(got, w))
			}
			assert.Check(t, !strings.Contains(got, "\n"), "one line: %q", got)
		})
	}
}

func TestStepOf(t *testing.T) {
	for desc, want := range map[string]Step{
		"create a user namespace (unshare CLONE_NEWUSER)": StepUserns,
		"proc mount on /proc: mount a new procfs":         StepProc,
		"mount a new /proc":                               StepProc,
		"bring lo up":                                     StepSetup,
		"set the hostname to box":                         StepSetup,
	} {
		assert.Check(t, is.Equal(StepOf(desc), want), desc)
	}
}

func TestAppArmorProfile(t *testing.T) {
	assert.Equal(t, AppArmorProfile("/usr/local/bin/nsbox"), `abi <abi/4.0>,
include <tunables/global>

profile nsbox /usr/local/bin/nsbox flags=(unconfined) {
  userns,

  include if exists <local/nsbox>
}
`)
}

// The profile make install ships is the one nsbox prints.
func TestShippedAppArmorProfile(t *testing.T) {
	b, err := os.ReadFile("../../contrib/apparmor/nsbox")
	assert.NilError(t, err)
	assert.Equal(t, strings.ReplaceAll(string(b), "@BINDIR@", "/usr/local/bin"), AppArmorProfile("/usr/local/bin/nsbox"))
}
