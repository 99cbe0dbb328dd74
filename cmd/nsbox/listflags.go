package main

import (
	"bytes"
	"encoding/csv"
	"strings"

	"github.com/spf13/pflag"
)

// The list flags of `nsbox run` and `nsbox exec` (--setenv, --share, …)
// as values of nsbox's own. pflag's StringArray and StringSlice print
// their empty default through encoding/csv when the flag is defined, a
// 4 KiB buffer each: 16 of them were two thirds of the bytes that
// defining `run`'s flags allocates on every start. These parse the same
// and print the same text once set, and their empty default is "", which
// FlagUsages treats as no default, as it treats pflag's "[]".

// listValue is a repeatable string flag: each occurrence adds one value
// (pflag's StringArray); with split, each occurrence adds the
// comma-separated values it holds, read as one CSV record (StringSlice).
type listValue struct {
	v     *[]string
	split bool
	set   bool // the first Set replaces the default
}

// listVar defines a repeatable flag that stores into p, as
// fs.StringArrayVarP with a nil default.
func listVar(fs *pflag.FlagSet, p *[]string, name, short, usage string) {
	*p = nil
	fs.VarP(&listValue{v: p}, name, short, usage)
}

// sliceVar defines a comma-separated list flag that stores into p, as
// fs.StringSliceVar with a nil default.
func sliceVar(fs *pflag.FlagSet, p *[]string, name, usage string) {
	*p = nil
	fs.Var(&listValue{v: p, split: true}, name, usage)
}

func (l *listValue) Set(s string) error {
	vals := []string{s}
	if l.split {
		var err error
		if vals, err = readCSV(s); err != nil {
			return err
		}
	}
	if !l.set {
		*l.v = vals
		l.set = true
		return nil
	}
	*l.v = append(*l.v, vals...)
	return nil
}

// Type is pflag's name for the same flag, so that usage texts that
// name no value (no `NAME` in the usage) read as before.
func (l *listValue) Type() string {
	if l.split {
		return "stringSlice"
	}
	return "stringArray"
}

// String is "" for the default (no values, not set), else pflag's text:
// the values as one CSV record in brackets ("[]" for none).
func (l *listValue) String() string {
	if len(*l.v) == 0 {
		if l.set {
			return "[]"
		}
		return ""
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	if err := w.Write(*l.v); err != nil {
		return ""
	}
	w.Flush()
	return "[" + strings.TrimSuffix(b.String(), "\n") + "]"
}

// readCSV is pflag's reading of a StringSlice occurrence: "" is no
// values, else one CSV record.
func readCSV(s string) ([]string, error) {
	if s == "" {
		return []string{}, nil
	}
	return csv.NewReader(strings.NewReader(s)).Read()
}
