//go:build nsbox_configcheck

package sandbox

// (Behind the build tag that links the stage's decoder into the tests:
// internal/stage's configcheck.go.)

import (
	"os"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/nsbox/nsbox/mapping"
	"github.com/nsbox/nsbox/sandbox/internal/stage"
)

// Real Specs, converted and encoded by the launcher's side, are what the
// stage's C decoder accepts: the default view, --root, a single map,
// every mount type, the network, a terminal, exec. (The stage package's
// own round-trip test holds its two halves together on plain Configs.)
func TestStageAcceptsSpecs(t *testing.T) {
	base, err := Default("true")
	assert.NilError(t, err)
	single := mapping.Plan{HostUID: 1000, HostGID: 100,
		UIDs: []mapping.Extent{{Inner: 1000, Outer: 1000, Count: 1}}, GIDs: []mapping.Extent{{Inner: 100, Outer: 100, Count: 1}}}
	cases := map[string]func(*Spec){
		"default": func(*Spec) {},
		"single":  func(s *Spec) { s.Mapping = single; s.Process.UID, s.Process.GID = 1000, 100 },
		"every mount type": func(s *Spec) {
			s.Mounts = append(s.Mounts,
				Mount{Type: MountTmpfs, Destination: "/mnt", Size: 1 << 20, Mode: 0o700, Owned: true},
				Mount{Type: MountDir, Destination: "/mnt/d"},
				Mount{Type: MountSymlink, Source: "/x", Destination: "/mnt/l"},
				Mount{Type: MountFile, Destination: "/mnt/f", Data: []byte{0, 1, 2}},
				Mount{Type: MountChmod, Destination: "/mnt/d", Mode: 0o711},
				Mount{Type: MountRemountRO, Destination: "/mnt", NonRecursive: true},
				Mount{Type: MountMqueue, Destination: "/dev/mqueue"},
				Mount{Type: MountBind, Source: "/usr", Destination: "/mnt/u", ReadOnly: true, Optional: true})
		},
		"extra files and argv0": func(s *Spec) { s.Process.ExtraFiles = []*os.File{os.Stdin}; s.Process.Argv0 = "x" },
		"disable userns":        func(s *Spec) { s.Security.DisableUserns = true },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			s := *base
			s.Mounts = append([]Mount(nil), base.Mounts...)
			edit(&s)
			cfg := stageConfig(&s, planNesting(&s), -1)
			assert.NilError(t, stage.CheckConfig(cfg.Encode()))
		})
	}
}
