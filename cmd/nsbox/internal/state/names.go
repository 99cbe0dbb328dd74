package state

import (
	"os"
	"path/filepath"
	"sort"
)

// EndedNames returns the names of the ended detached sandboxes whose logs
// are kept in dir (what EndedLog finds, and nsbox rm removes), sorted. It
// reads the directory's names only; an entry that is not a regular file
// or whose name ValidName refuses is left out.
func EndedNames(dir string) []string {
	ents, err := os.ReadDir(filepath.Join(dir, endedLogs))
	if err != nil {
		return nil
	}
	var names []string
	for _, d := range ents {
		if d.Type().IsRegular() && ValidName(d.Name()) == nil {
			names = append(names, d.Name())
		}
	}
	sort.Strings(names)
	return names
}
