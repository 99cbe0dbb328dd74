package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nsbox/nsbox/mapping"
	"golang.org/x/sys/unix"
)

// Store is a directory of unpacked layers and image records:
//
//	layers/HEX/fs          a layer, unpacked: an overlayfs lower directory
//	layers/HEX/layer.json  its diff id and size
//	layers/HEX.lock        flock: exclusive while it is unpacked or removed,
//	                       shared while a sandbox runs on it
//	layers/.new-HEX-*      a layer being unpacked (renamed to HEX when done)
//	images/KEY.json        an image: reference, digests, configuration, layers
//	images/KEY.lock        flock: shared while a sandbox runs the image
//
// HEX is the layer's chain id (OCI image spec: the digest of the layer
// with all below it), not its diff id: a layer dir is made for one stack
// of lower layers, which lets an opaque directory be stored as plain
// whiteouts of what the lower layers hold there (see expandOpaque).
// Images that share a base share its chain ids, so a base is stored
// once. A finished layer directory is never changed, only removed.
type Store struct {
	// Dir is the store's root; DefaultDir() is nsbox's.
	Dir string
	// Progress, if not nil, gets pull progress (see progress.go).
	Progress io.Writer
	// Terminal makes progress a live line per layer instead of one line
	// per pull.
	Terminal bool
	// IDs, if not nil, is the id map layers are unpacked under, keeping
	// their files' owners (owners.go; IDsFor). nil: every file is the
	// caller's.
	IDs *mapping.Plan
}

// DefaultDir is $XDG_DATA_HOME/nsbox/images, or ~/.local/share/nsbox/images.
func DefaultDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "nsbox", "images"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || !filepath.IsAbs(home) {
		return "", errors.New("no home directory to keep images in; fix: set HOME or XDG_DATA_HOME")
	}
	return filepath.Join(home, ".local", "share", "nsbox", "images"), nil
}

// Config is the part of an image's configuration a sandbox uses.
type Config struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	User       string   `json:"user,omitempty"`
	StopSignal string   `json:"stopSignal,omitempty"`
}

// Layer is one layer of an image, in the store.
type Layer struct {
	// Key names the layer's directory under layers/: the chain id's hex,
	// and for layers unpacked with their owners (Store.IDs) a tag of the
	// id map, so a store never mixes layers of two ownerships.
	Key     string `json:"key"`
	ChainID string `json:"chainID"`
	DiffID  string `json:"diffID"`
	Size    int64  `json:"size"` // bytes of file data unpacked
}

// Image is an image record: what nsbox knows of an image it has stored.
type Image struct {
	Ref    string    `json:"ref"`    // canonical reference (Ref.String)
	Digest string    `json:"digest"` // manifest digest
	ID     string    `json:"id"`     // config digest
	Config Config    `json:"config"`
	Layers []Layer   `json:"layers"` // bottom first
	Pulled time.Time `json:"pulled"`
	// Source identifies a local image's file (an archive, a layout's
	// index.json) as it was read: a use finding it unchanged takes the
	// record without reading the image again.
	Source *fileID `json:"source,omitempty"`
}

// fileID is what stat(2) says of a file: unchanged means not rewritten.
type fileID struct {
	Dev, Ino, Size uint64
	MtimeNs        int64
}

// localID identifies the file a local reference reads first.
func localID(r Ref) *fileID {
	p := r.Name
	if r.Kind == OCILayout {
		p = filepath.Join(p, "index.json")
	}
	var st unix.Stat_t
	if unix.Stat(p, &st) != nil {
		return nil
	}
	return &fileID{Dev: st.Dev, Ino: st.Ino, Size: uint64(st.Size), MtimeNs: st.Mtim.Nano()}
}

// Size is the bytes of file data of all the image's layers.
func (img *Image) Size() int64 {
	var n int64
	for _, l := range img.Layers {
		n += l.Size
	}
	return n
}

// hexOf strips "sha256:".
func hexOf(d string) string { _, h, _ := strings.Cut(d, ":"); return h }

func (s *Store) layerDir(key string) string { return filepath.Join(s.Dir, "layers", key) }

// key is the directory name of the layer chain in this store.
func (s *Store) key(chain string) string { return hexOf(chain) + s.idsTag() }

// keyOf is l's directory name (records from before Key: the chain id's hex).
func keyOf(l Layer) string {
	if l.Key != "" {
		return l.Key
	}
	return hexOf(l.ChainID)
}

// LowerDirs are the image's layer directories, topmost first, as
// overlayfs's lowerdir and sandbox.Mount.Lower list them.
func (s *Store) LowerDirs(img *Image) []string {
	var out []string
	for i := len(img.Layers) - 1; i >= 0; i-- {
		out = append(out, filepath.Join(s.layerDir(keyOf(img.Layers[i])), "fs"))
	}
	return out
}

func recordKey(ref string) string {
	h := sha256.Sum256([]byte(ref))
	return hex.EncodeToString(h[:16])
}

func (s *Store) recordPath(ref string) string {
	return filepath.Join(s.Dir, "images", recordKey(ref)+".json")
}

func (s *Store) mkdirs() error {
	for _, d := range []string{"layers", "images", "tmp"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o700); err != nil {
			return fmt.Errorf("create the image store: %w", err)
		}
	}
	return nil
}

// Cached returns the stored image r names, if a use may take it without
// fetching: a registry image once pulled (until nsbox image pull); a
// local image (Ref.Local) while its file is unchanged (same inode, size
// and mtime). Otherwise a fetcher (image/fetch) reads it again, and only
// its new layers are unpacked.
func (s *Store) Cached(r Ref) (*Image, bool) {
	img, err := s.Lookup(r.String())
	if err != nil {
		return nil, false
	}
	if r.Local() && (img.Source == nil || localID(r) == nil || *img.Source != *localID(r)) {
		return nil, false
	}
	return img, true
}

// Lookup reads the record of ref (canonical), fs.ErrNotExist if none.
func (s *Store) Lookup(ref string) (*Image, error) {
	b, err := os.ReadFile(s.recordPath(ref))
	if err != nil {
		return nil, err
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, fmt.Errorf("image record of %s: %w", ref, err)
	}
	return &img, nil
}

// Source is an image a fetcher has opened, as the store takes it: the
// digests and configuration it read and checked, and its layers.
type Source struct {
	Digest  string   // the manifest's digest
	ID      string   // the configuration's digest
	OS      string   // the configuration's os ("" taken as linux)
	Config  Config   // the part of the configuration a sandbox uses
	DiffIDs []string // the layers' diff ids, bottom first
	// Layer opens layer i's uncompressed tar stream. Its content is
	// checked against DiffIDs[i] while it is unpacked.
	Layer func(i int) (io.ReadCloser, error)
}

// Pull is one fetch into a Store, from BeginPull to Finish.
type Pull struct {
	s   *Store
	ref Ref
	id  *fileID
	// TmpDir is a directory of the store's for the fetcher's scratch
	// files (an oci-archive's layout), on the store's filesystem.
	TmpDir string
}

// BeginPull prepares the store for a fetch of r: it creates the store's
// directories and notes the state of a local image's file before it is
// read (so that a change during the read is seen on the next use).
func (s *Store) BeginPull(r Ref) (*Pull, error) {
	if err := s.mkdirs(); err != nil {
		return nil, err
	}
	p := &Pull{s: s, ref: r, TmpDir: filepath.Join(s.Dir, "tmp")}
	if r.Local() {
		p.id = localID(r)
	}
	return p, nil
}

// Finish unpacks each layer of src the store does not hold yet and
// writes the image's record.
func (p *Pull) Finish(src *Source) (*Image, error) {
	img, err := p.s.unpackImage(p.ref, src)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", p.ref, err)
	}
	img.Source = p.id
	b, _ := json.MarshalIndent(img, "", "  ")
	if err := writeAtomic(p.s.recordPath(img.Ref), b); err != nil {
		return nil, fmt.Errorf("image %s: write its record: %w", p.ref, err)
	}
	return img, nil
}

func (s *Store) unpackImage(r Ref, src *Source) (*Image, error) {
	if src.OS != "" && src.OS != "linux" {
		return nil, fmt.Errorf("it is an image for %s, not linux", src.OS)
	}
	img := &Image{Ref: r.String(), Digest: src.Digest, ID: src.ID, Pulled: time.Now().UTC(), Config: src.Config}
	for _, d := range src.DiffIDs {
		// A diff id names a layer's directory (by its chain id): only a
		// well-formed sha256 digest is taken.
		if !strings.HasPrefix(d, "sha256:") || !validDigest(d) {
			return nil, fmt.Errorf("the configuration names a layer %q, not sha256:HEX", d)
		}
	}
	p := s.newProgress(r.String(), len(src.DiffIDs))
	chain := ""
	for i, diff := range src.DiffIDs {
		if chain == "" {
			chain = diff
		} else {
			h := sha256.Sum256([]byte(chain + " " + diff))
			chain = "sha256:" + hex.EncodeToString(h[:])
		}
		size, err := s.ensureLayer(chain, diff, func() (io.ReadCloser, error) { return src.Layer(i) }, img.Layers, p)
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i+1, diff, err)
		}
		img.Layers = append(img.Layers, Layer{Key: s.key(chain), ChainID: chain, DiffID: diff, Size: size})
	}
	p.done()
	return img, nil
}

// layerMeta is layers/HEX/layer.json.
type layerMeta struct {
	DiffID  string `json:"diffID"`
	Size    int64  `json:"size"`
	Devices int    `json:"devicesSkipped,omitempty"`
}

// ensureLayer unpacks the layer open gives (diff id diff) as chain over
// lowers, unless the store holds it, and returns its size. Concurrent
// pulls of one layer wait on its lock; the second finds it done.
func (s *Store) ensureLayer(chain, diff string, open func() (io.ReadCloser, error), lowers []Layer, p *progress) (int64, error) {
	key := s.key(chain)
	lock, err := s.lockLayer(key, unix.LOCK_EX)
	if err != nil {
		return 0, err
	}
	defer lock.Close()
	dir := s.layerDir(key)
	if m, err := readLayerMeta(dir); err == nil {
		p.cached()
		return m.Size, nil
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.Dir, "layers"), ".new-"+key+"-")
	if err != nil {
		return 0, err
	}
	ok := false
	defer func() {
		if !ok {
			s.removeTree(tmp)
		}
	}()
	if err := os.Mkdir(filepath.Join(tmp, "fs"), 0o755); err != nil {
		return 0, err
	}
	rc, err := open()
	if err != nil {
		return 0, fmt.Errorf("fetch: %w", err)
	}
	defer rc.Close()
	var st unpackStats
	if s.IDs != nil {
		st, err = s.unpackWithOwners(filepath.Join(tmp, "fs"), p.reader(rc), diff, s.lowerFS(lowers))
	} else {
		st, err = unpackDir(filepath.Join(tmp, "fs"), p.reader(rc), diff, s.lowerFS(lowers), false)
	}
	if err != nil {
		return 0, err
	}
	b, _ := json.Marshal(layerMeta{DiffID: diff, Size: st.Bytes, Devices: st.Devices})
	if err := os.WriteFile(filepath.Join(tmp, "layer.json"), b, 0o600); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return 0, fmt.Errorf("store the layer: %w", err)
	}
	ok = true
	p.layerDone(st)
	return st.Bytes, nil
}

// unpackDir unpacks the layer r into the directory dir, stores its
// opaque directories as whiteouts of lowers (see expandOpaque) and then
// gives the directories their times; owners keeps the entries' owners
// (in a user namespace that maps them).
func unpackDir(dir string, r io.Reader, diff string, lowers []string, owners bool) (unpackStats, error) {
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return unpackStats{}, err
	}
	defer unix.Close(root)
	st, err := unpackLayerAs(root, r, diff, owners)
	if err != nil {
		return st, err
	}
	if err := expandOpaque(root, st.Opaque, lowers); err != nil {
		return st, err
	}
	// Last: every entry and whiteout above changed its directory's time.
	return st, setDirTimes(root, st.dirs)
}

// lowerFS lists the fs directories of lowers, topmost first.
func (s *Store) lowerFS(lowers []Layer) []string {
	return s.LowerDirs(&Image{Layers: lowers})
}

func readLayerMeta(dir string) (layerMeta, error) {
	var m layerMeta
	b, err := os.ReadFile(filepath.Join(dir, "layer.json"))
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	return m, err
}

// lockLayer opens and flocks layers/HEX.lock (how: unix.LOCK_EX or
// LOCK_SH, maybe |LOCK_NB). Closing the file releases the lock.
func (s *Store) lockLayer(key string, how int) (*os.File, error) {
	return lockFile(filepath.Join(s.Dir, "layers", key+".lock"), how)
}

func lockFile(path string, how int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// writeAtomic writes b to path through a temporary file and a rename, so
// a reader sees the old content or the new, never a part.
func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// List returns the stored images, sorted by reference.
func (s *Store) List() ([]*Image, error) {
	names, err := filepath.Glob(filepath.Join(s.Dir, "images", "*.json"))
	if err != nil {
		return nil, err
	}
	var out []*Image
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			continue
		}
		var img Image
		if json.Unmarshal(b, &img) == nil {
			out = append(out, &img)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}
