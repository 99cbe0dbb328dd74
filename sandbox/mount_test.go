package sandbox

import (
	"bytes"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/nsbox/nsbox/mapping"

	"gotest.tools/v3/assert"
	fsx "gotest.tools/v3/fs"

	"github.com/nsbox/nsbox/sandbox/internal/stage"
)

func TestValidateMounts(t *testing.T) {
	dir := fsx.NewDir(t, "nsbox-validate")
	for _, tc := range []struct {
		name string
		m    Mount
		err  string
	}{
		{"bind ok", Mount{Type: MountBind, Source: dir.Path(), Destination: "/x"}, ""},
		{"optional missing ok", Mount{Type: MountBind, Source: "/nsbox-missing", Destination: "/x", Optional: true}, ""},
		{"missing source", Mount{Type: MountBind, Source: "/nsbox-missing", Destination: "/x", Flag: "--bind /nsbox-missing:/x"}, "--bind /nsbox-missing:/x: source does not exist"},
		{"relative destination", Mount{Type: MountTmpfs, Destination: "x"}, "not absolute"},
		{"unknown type", Mount{Type: "nfs", Destination: "/x"}, "unknown mount type"},
		{"NUL", Mount{Type: MountDir, Destination: "/a\x00b"}, "NUL"},
		{"overlay missing upper", Mount{Type: MountOverlay, Lower: []string{dir.Path()}, Upper: "/nsbox-missing", Work: dir.Path(), Destination: "/o"}, "upper directory"},
		{"mode bits", Mount{Type: MountDir, Destination: "/d", Mode: fs.ModeDir}, "mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Spec{Namespaces: AllNamespaces(), Mounts: []Mount{tc.m}}
			err := s.validateMounts()
			if tc.err == "" {
				assert.NilError(t, err)
				return
			}
			assert.ErrorContains(t, err, tc.err)
		})
	}
	s := Spec{Mounts: []Mount{}}
	assert.ErrorContains(t, s.validateMounts(), "mount namespace")
}

// The records mounts.c reads: one "mount" opens each op, file data is hex.
func TestEncodeMounts(t *testing.T) {
	c := stage.Config{NewRoot: true, OwnerUID: 1000, OwnerGID: -1}
	for _, m := range []Mount{
		{Type: MountBind, Source: "/a", Destination: "/b/../c", ReadOnly: true, Optional: true},
		{Type: MountFile, Destination: "/f", Data: []byte{0, 'x'}, Mode: 0o600},
		{Type: MountOverlay, Lower: []string{"/l1", "/l2"}, Upper: "/u", Work: "/w", Destination: "/o"},
	} {
		c.Ops = append(c.Ops, m.op())
	}
	var got []string
	for _, r := range bytes.Split(bytes.TrimSuffix(c.Encode(), []byte{0}), []byte{0}) {
		if k, _, _ := strings.Cut(string(r), "="); k == "new-root" || k == "owner-uid" || k == "owner-gid" || strings.HasPrefix(k, "mount") {
			got = append(got, string(r))
		}
	}
	assert.DeepEqual(t, got, []string{
		"owner-uid=1000", "owner-gid=-1", "new-root=1",
		"mount=bind", "mount-src=/a", "mount-dst=/c", "mount-flags=5", "mount-mode=0", "mount-what=bind mount /a on /b/../c",
		"mount=file", "mount-dst=/f", "mount-flags=0", "mount-mode=384", "mount-data=0078", "mount-what=file mount on /f",
		"mount=overlay", "mount-dst=/o", "mount-flags=0", "mount-mode=0", "mount-lower=/l1", "mount-lower=/l2",
		"mount-upper=/u", "mount-work=/w", "mount-what=overlay mount on /o",
	})
}

func TestUnixMode(t *testing.T) {
	assert.Equal(t, unixMode(fs.ModePerm|fs.ModeSticky), uint32(0o1777))
	assert.Equal(t, unixMode(0o755|fs.ModeSetuid|fs.ModeSetgid), uint32(0o6755))
}

func TestPlanNesting(t *testing.T) {
	single := mapping.Plan{HostUID: 1000, HostGID: 100,
		UIDs: []mapping.Extent{{Inner: 1000, Outer: 1000, Count: 1}}, GIDs: []mapping.Extent{{Inner: 100, Outer: 100, Count: 1}}}
	proc := Process{UID: 1000, GID: 100}
	// The caller's own ids only: inner 0 is the caller for setup, and the
	// command's nested namespace maps its ids back onto that 0.
	n := planNesting(&Spec{Namespaces: AllNamespaces(), Mounts: []Mount{}, Mapping: single, Process: proc})
	assert.Check(t, n.nested)
	assert.DeepEqual(t, n.uids, []mapping.Extent{{Inner: 1000, Outer: 0, Count: 1}})
	assert.DeepEqual(t, n.gids, []mapping.Extent{{Inner: 100, Outer: 0, Count: 1}})
	assert.Equal(t, n.outerUID, uint32(0))
	assert.Equal(t, n.outerGID, uint32(0))
	assert.DeepEqual(t, n.plan.UIDs, []mapping.Extent{{Inner: 0, Outer: 1000, Count: 1}})
	assert.DeepEqual(t, n.plan.GIDs, []mapping.Extent{{Inner: 0, Outer: 100, Count: 1}})

	// Subordinate ids (or root already mapped): the plan as it is, and a
	// nested identity over every id it maps.
	subids := single
	subids.UIDs = []mapping.Extent{{Inner: 0, Outer: 100000, Count: 1000}, {Inner: 1000, Outer: 1000, Count: 1}}
	n = planNesting(&Spec{Namespaces: AllNamespaces(), Mounts: []Mount{}, Mapping: subids, Process: proc})
	assert.Check(t, n.nested)
	assert.DeepEqual(t, n.plan.UIDs, subids.UIDs)
	assert.DeepEqual(t, n.uids, []mapping.Extent{{Inner: 0, Outer: 0, Count: 1000}, {Inner: 1000, Outer: 1000, Count: 1}})
	assert.Equal(t, n.outerUID, uint32(1000))
	root := single
	root.UIDs = []mapping.Extent{{Inner: 0, Outer: 1000, Count: 1}}
	root.GIDs = []mapping.Extent{{Inner: 0, Outer: 100, Count: 1}}
	n = planNesting(&Spec{Namespaces: AllNamespaces(), Mounts: []Mount{}, Mapping: root})
	assert.DeepEqual(t, n.uids, []mapping.Extent{{Inner: 0, Outer: 0, Count: 1}})

	// Sharing the launcher's mount namespace: no mounts of nsbox's to
	// lock, no nesting.
	shared := AllNamespaces()
	shared.Mount = false
	assert.Check(t, !planNesting(&Spec{Namespaces: shared, Mapping: subids}).nested)
}

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
