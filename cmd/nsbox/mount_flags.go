package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/flagvalue"
	"github.com/nsbox/nsbox/cmd/nsbox/internal/ties"
	"github.com/nsbox/nsbox/internal/hostdirs"
	"github.com/nsbox/nsbox/sandbox"
	"github.com/spf13/pflag"
)

// mountFlags are the filesystem flags of nsbox run. Every op flag appends
// to one list, so the ops keep their command-line order (bubblewrap's
// model): a later op sees what earlier ones made.
type mountFlags struct {
	ops       []sandbox.Mount
	empty     bool
	rootfs    string
	sys       bool
	shareHome bool      // --share-home: the real home, read-only
	home      string    // --home DIR|NAME: a persistent home
	caches    []string  // --cache go,pip,…: persistent tool caches
	stdin     io.Reader // where --file -:DST reads
	image     *imageFlags
}

// mountFlagUsage lists the op flags and their argument, in --help order.
var mountFlagUsage = []struct{ name, arg, help string }{
	{"bind", "SRC[:DST]", "bind host path SRC read-write at DST (default: SRC)"},
	{"ro-bind", "SRC[:DST]", "bind SRC read-only, every submount too"},
	{"dev-bind", "SRC[:DST]", "bind SRC read-write with device nodes usable"},
	{"bind-try", "SRC[:DST]", "as --bind, skipped if SRC does not exist"},
	{"ro-bind-try", "SRC[:DST]", "as --ro-bind, skipped if SRC does not exist"},
	{"dev-bind-try", "SRC[:DST]", "as --dev-bind, skipped if SRC does not exist"},
	{"bind-fd", "FD:DST", "bind what inherited descriptor FD is open on (a directory or file) read-write at DST, e.g. --bind-fd 3:/src 3<~/src"},
	{"ro-bind-fd", "FD:DST", "as --bind-fd, read-only, every submount too"},
	{"tmpfs", "DST[:size=N,mode=M]", "mount an empty tmpfs on DST (size in bytes or k/m/g, octal mode)"},
	{"dir", "DST", "create directory DST"},
	{"symlink", "TARGET:DST", "create DST as a symlink to TARGET"},
	{"chmod", "MODE:PATH", "set PATH's permissions to octal MODE"},
	{"remount-ro", "DST", "make the mount at DST read-only, recursively"},
	{"proc", "DST", "mount a new procfs on DST"},
	{"dev", "DST", "mount a minimal /dev on DST (null zero full random urandom tty, pts, shm)"},
	{"mqueue", "DST", "mount a POSIX message queue filesystem on DST"},
	{"file", "SRC:DST", "place a copy of host file SRC (- for nsbox's stdin) at DST, writable"},
	{"tmp-overlay", "DST", "a throwaway writable layer over directory DST"},
	{"overlay", "LOWER[:LOWER…]:UPPER:WORK:DST", "overlayfs on DST, writes kept in host directory UPPER"},
	{"copy-up", "DIR", "make directory DIR writable for the sandbox's life (as rootlesskit --copy-up)"},
	{"mount", "type=T,source=S,target=D[,readonly…]", "any op, Docker-style, for paths with ':' or ','"},
}

// addMountFlags registers the filesystem flags on the run FlagSet.
func addMountFlags(fs *pflag.FlagSet) *mountFlags {
	m := &mountFlags{stdin: os.Stdin}
	fs.BoolVar(&m.empty, "empty", false, "start from an empty root: only what the mount flags add")
	fs.StringVar(&m.rootfs, "rootfs", "", "use host directory `DIR` as the root (read-write) instead of the host's /")
	fs.BoolVar(&m.sys, "sys", false, "bind the host's /sys read-only")
	fs.BoolVar(&m.shareHome, "share-home", false, "show your real home directory, read-only (default: a private, empty, writable home at its path)")
	fs.StringVar(&m.home, "home", "", "use host directory `DIR` (a path) as the home, read-write, or a NAME kept in nsbox's cache directory (nsbox cache ls)")
	sliceVar(fs, &m.caches, "cache", "keep these tool caches `NAME[,NAME]` (go, pip, npm, cargo) from one sandbox to the next, in nsbox's cache directory")
	for _, f := range mountFlagUsage {
		fs.Var(&mountValue{flags: m, name: f.name}, f.name, "`"+f.arg+"` "+f.help)
	}
	return m
}

// mountValue is one op flag; Set parses and appends to the shared list.
type mountValue struct {
	flags *mountFlags
	name  string
}

func (v *mountValue) String() string { return "" }
func (v *mountValue) Type() string   { return "" }

func (v *mountValue) Set(s string) error {
	var (
		m   sandbox.Mount
		err error
	)
	if v.name == "mount" {
		m, err = parseMountOption(s)
	} else {
		m, err = parseMountFlag(v.name, s)
	}
	if err != nil {
		return err
	}
	if m.Type == sandbox.MountFile && m.Source == "-" {
		m.Data, err = io.ReadAll(io.LimitReader(v.flags.stdin, 1<<20+1))
		if err != nil {
			return fmt.Errorf("read the content from stdin: %w", err)
		}
		m.Source = ""
	}
	v.flags.ops = append(v.flags.ops, m)
	return nil
}

// parseMountFlag turns one op flag (without dashes) and its argument into
// a Mount. Relative host paths are made absolute.
func parseMountFlag(name, arg string) (sandbox.Mount, error) {
	m := sandbox.Mount{Flag: "--" + name + " " + arg}
	if arg == "" {
		return m, errors.New("empty argument")
	}
	switch name {
	case "bind", "ro-bind", "dev-bind", "bind-try", "ro-bind-try", "dev-bind-try":
		m.Type = sandbox.MountBind
		m.ReadOnly = strings.HasPrefix(name, "ro-")
		m.Devices = strings.HasPrefix(name, "dev-")
		m.Optional = strings.HasSuffix(name, "-try")
		src, dst, _ := strings.Cut(arg, ":")
		m.Source = src
		m.Destination = dst
	case "bind-fd", "ro-bind-fd":
		m.Type, m.ReadOnly = sandbox.MountBind, name == "ro-bind-fd"
		n, dst, ok := strings.Cut(arg, ":")
		fd, err := strconv.Atoi(n)
		if !ok || dst == "" || err != nil || fd < 0 {
			return m, fmt.Errorf("%q is not FD:DST; fix: e.g. --%s 3:/data 3</srv/data", arg, name)
		}
		if m.Source, err = ties.FDPath(fd); err != nil {
			return m, fmt.Errorf("fd %d: %w; fix: open the directory on fd %d for nsbox, e.g. --%s %d:%s %d<DIR", fd, err, fd, name, fd, dst, fd)
		}
		m.Destination = dst
	case "tmpfs":
		m.Type = sandbox.MountTmpfs
		dst, opts, _ := strings.Cut(arg, ":")
		m.Destination = dst
		if opts != "" {
			for _, o := range strings.Split(opts, ",") {
				k, val, _ := strings.Cut(o, "=")
				if err := setTmpfsOption(&m, k, val); err != nil {
					return m, err
				}
			}
		}
	case "dir", "remount-ro", "proc", "dev", "mqueue", "tmp-overlay", "copy-up":
		m.Type = map[string]sandbox.MountType{"dir": sandbox.MountDir, "remount-ro": sandbox.MountRemountRO,
			"proc": sandbox.MountProc, "dev": sandbox.MountDev, "mqueue": sandbox.MountMqueue,
			"tmp-overlay": sandbox.MountTmpOverlay, "copy-up": sandbox.MountCopyUp}[name]
		m.Destination = arg
	case "symlink":
		m.Type = sandbox.MountSymlink
		target, dst, ok := strings.Cut(arg, ":")
		if !ok {
			return m, errors.New("not TARGET:DST")
		}
		m.Source, m.Destination = target, dst
	case "chmod":
		m.Type = sandbox.MountChmod
		mode, path, ok := strings.Cut(arg, ":")
		if !ok {
			return m, errors.New("not MODE:PATH")
		}
		var err error
		if m.Mode, err = flagvalue.Mode(mode); err != nil {
			return m, err
		}
		m.Destination = path
	case "file":
		m.Type = sandbox.MountFile
		src, dst, ok := strings.Cut(arg, ":")
		if !ok {
			return m, errors.New("not SRC:DST (SRC a host file, or - for stdin)")
		}
		m.Source, m.Destination = src, dst
	case "overlay":
		m.Type = sandbox.MountOverlay
		parts := strings.Split(arg, ":")
		if len(parts) < 4 {
			return m, errors.New("not LOWER[:LOWER…]:UPPER:WORK:DST")
		}
		n := len(parts)
		m.Lower = parts[:n-3]
		m.Upper, m.Work, m.Destination = parts[n-3], parts[n-2], parts[n-1]
	default:
		return m, fmt.Errorf("unknown mount flag --%s", name)
	}
	return finishMount(m)
}

// finishMount fills defaults and reads --file content.
func finishMount(m sandbox.Mount) (sandbox.Mount, error) {
	abs := func(p string) (string, error) {
		if p == "" || filepath.IsAbs(p) {
			return p, nil
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("make %s absolute: %w", p, err)
		}
		return a, nil
	}
	var err error
	switch m.Type {
	case sandbox.MountBind:
		if m.Source, err = abs(m.Source); err != nil {
			return m, err
		}
		if m.Destination == "" {
			m.Destination = m.Source
		}
	case sandbox.MountOverlay:
		for i := range m.Lower {
			if m.Lower[i], err = abs(m.Lower[i]); err != nil {
				return m, err
			}
		}
		if m.Upper, err = abs(m.Upper); err != nil {
			return m, err
		}
		if m.Work, err = abs(m.Work); err != nil {
			return m, err
		}
	case sandbox.MountFile:
		if m.Source != "-" {
			b, err := readSmallFile(m.Source)
			if err != nil {
				return m, err
			}
			m.Data, m.Source = b, ""
			if m.Data == nil {
				m.Data = []byte{}
			}
		}
	}
	if m.Destination == "" {
		return m, errors.New("no destination")
	}
	if !filepath.IsAbs(m.Destination) {
		return m, fmt.Errorf("destination %q is not absolute; fix: give a path inside the sandbox starting with /", m.Destination)
	}
	return m, nil
}

// readSmallFile reads a --file source, refusing more than 1 MiB.
func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("source %s does not exist", path)
		}
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("%s is larger than 1 MiB; fix: bind it with --ro-bind instead", path)
	}
	return b, nil
}

func setTmpfsOption(m *sandbox.Mount, k, v string) error {
	switch k {
	case "size", "tmpfs-size":
		n, err := parseSize(v)
		if err != nil {
			return err
		}
		m.Size = n
	case "mode", "tmpfs-mode":
		mode, err := flagvalue.Mode(v)
		if err != nil {
			return err
		}
		m.Mode = mode
	default:
		return fmt.Errorf("unknown tmpfs option %q; fix: use size=N[k|m|g] or mode=OCTAL", k)
	}
	return nil
}

// parseSize reads "64m", "1g", "4096".
func parseSize(s string) (int64, error) {
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			s = s[:n-1]
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is not a positive number of bytes with an optional k, m or g", s)
	}
	return v * mult, nil
}

// parseMountOption reads a Docker-style --mount value: comma-separated
// key=value fields, CSV-quoted where a path holds a comma.
func parseMountOption(arg string) (sandbox.Mount, error) {
	m := sandbox.Mount{Flag: "--mount " + arg}
	r := csv.NewReader(strings.NewReader(arg))
	r.LazyQuotes = false
	fields, err := r.Read()
	if err != nil || strings.ContainsAny(arg, "\n\r") {
		return m, errors.New("not comma-separated key=value fields; fix: e.g. --mount type=bind,source=/a,target=/b,readonly")
	}
	typ := ""
	for _, f := range fields {
		k, v, hasValue := strings.Cut(f, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		flag := func() (bool, error) {
			if !hasValue {
				return true, nil
			}
			b, err := strconv.ParseBool(v)
			if err != nil {
				return false, fmt.Errorf("%s=%q is not true or false", k, v)
			}
			return b, nil
		}
		var err error
		switch k {
		case "type":
			typ = v
		case "source", "src":
			m.Source = v
		case "target", "destination", "dst":
			m.Destination = v
		case "readonly", "ro":
			m.ReadOnly, err = flag()
		case "optional", "try":
			m.Optional, err = flag()
		case "devices", "dev":
			m.Devices, err = flag()
		case "size", "tmpfs-size", "mode", "tmpfs-mode":
			err = setTmpfsOption(&m, k, v)
		case "lower", "lowerdir":
			m.Lower = append(m.Lower, v)
		case "upper", "upperdir":
			m.Upper = v
		case "work", "workdir":
			m.Work = v
		default:
			return m, fmt.Errorf("unknown field %q; fix: use type, source, target, readonly, optional, devices, size, mode, lower, upper, work", k)
		}
		if err != nil {
			return m, err
		}
	}
	known := false
	for _, t := range []sandbox.MountType{sandbox.MountBind, sandbox.MountTmpfs, sandbox.MountDir, sandbox.MountSymlink,
		sandbox.MountChmod, sandbox.MountRemountRO, sandbox.MountProc, sandbox.MountDev, sandbox.MountMqueue,
		sandbox.MountFile, sandbox.MountOverlay, sandbox.MountTmpOverlay, sandbox.MountCopyUp} {
		known = known || string(t) == typ
	}
	if !known {
		return m, fmt.Errorf("type %q is not one of bind, tmpfs, dir, symlink, chmod, remount-ro, proc, dev, mqueue, file, overlay, tmp-overlay, copy-up", typ)
	}
	m.Type = sandbox.MountType(typ)
	if m.Type == sandbox.MountFile && m.Source == "" {
		return m, errors.New("type=file needs source=FILE (or source=- for stdin)")
	}
	return finishMount(m)
}

// apply puts the filesystem into spec: the default view (or --rootfs, or
// --empty) with the op flags in order. Ops on / itself go first, right
// after the root, so /dev, /proc, /tmp and the working directory land on
// top of them. The notice says why the working directory is not writable,
// when it is not.
func (m *mountFlags) apply(spec *sandbox.Spec) (string, error) {
	withImage := m.image != nil && m.image.ref != ""
	custom := len(m.ops) > 0 || m.empty || m.rootfs != "" || m.sys || m.shareHome || m.home != "" || len(m.caches) > 0 || withImage
	if !spec.Namespaces.Mount {
		if custom {
			return "", errors.New("the mount flags need a mount namespace of the sandbox's own; fix: drop mnt from --share")
		}
		return "", nil
	}
	if m.empty && m.rootfs != "" {
		return "", errors.New("--empty and --rootfs both say what the root is; fix: keep one")
	}
	if (m.empty || m.rootfs != "") && (m.shareHome || m.home != "" || len(m.caches) > 0) {
		return "", errors.New("--share-home, --home and --cache apply to the default view, not to --empty or --rootfs; fix: bind the directories with --bind")
	}
	if withImage && (m.empty || m.rootfs != "" || m.shareHome || m.home != "" || len(m.caches) > 0) {
		return "", errors.New("--image gives the root; --empty, --rootfs, --share-home, --home and --cache apply to the default view; fix: bind directories with --bind")
	}
	if m.shareHome && m.home != "" {
		return "", errors.New("--share-home and --home both say what the home is; fix: keep one")
	}
	var onRoot, rest []sandbox.Mount
	for _, op := range m.ops {
		if op.Destination == "/" && op.Type != sandbox.MountBind && !m.empty {
			onRoot = append(onRoot, op)
		} else {
			rest = append(rest, op)
		}
	}
	if m.sys {
		rest = append(rest, sandbox.Mount{Type: sandbox.MountBind, Source: "/sys", Destination: "/sys", ReadOnly: true, Flag: "--sys"})
	}
	notice := ""
	switch {
	case withImage:
		m.image.view(spec, onRoot)
	case m.empty:
		spec.Mounts = []sandbox.Mount{}
	case m.rootfs != "":
		dir, err := filepath.Abs(m.rootfs)
		if err != nil {
			return "", fmt.Errorf("--rootfs %s: %w", m.rootfs, err)
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return "", fmt.Errorf("--rootfs %s: not a directory; fix: give a directory holding a root filesystem (e.g. from debootstrap)", m.rootfs)
		}
		spec.Mounts = []sandbox.Mount{{Type: sandbox.MountBind, Source: dir, Destination: "/", Flag: "--rootfs " + m.rootfs}}
		spec.Mounts = append(spec.Mounts, onRoot...)
		spec.Mounts = append(spec.Mounts, sandbox.BaseView()...)
	default:
		cwd, _ := os.Getwd()
		v := sandbox.View{Cwd: cwd, Home: hostdirs.UserHome(), ShareHome: m.shareHome, RuntimeDir: os.Getenv("XDG_RUNTIME_DIR")}
		if m.home != "" {
			dir, err := homeDir(m.home)
			if err != nil {
				return "", err
			}
			v.HomeSource = dir
		}
		view, why := v.Mounts()
		caches, err := cacheMounts(m.caches, v.Home)
		if err != nil {
			return "", err
		}
		spec.Mounts = append([]sandbox.Mount{view[0]}, onRoot...)
		spec.Mounts = append(spec.Mounts, view[1:]...)
		spec.Mounts = append(spec.Mounts, caches...)
		if why != "" && !m.bindsCwd(cwd) {
			notice = fmt.Sprintf("nsbox: notice: the current directory %s %s: nothing is bound writable; fix: --bind %s to let the command write it", cwd, why, cwd)
		}
	}
	spec.Mounts = append(spec.Mounts, rest...)
	return notice, nil
}

// bindsCwd reports whether an op flag binds something at dir, so the
// notice about the working directory would be noise.
func (m *mountFlags) bindsCwd(dir string) bool {
	for _, op := range m.ops {
		if op.Type == sandbox.MountBind && filepath.Clean(op.Destination) == filepath.Clean(dir) {
			return true
		}
	}
	return false
}
