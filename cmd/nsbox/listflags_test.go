package main

import (
	"testing"

	"github.com/spf13/pflag"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// BenchmarkNewRunFlags is the cost of defining `nsbox run`'s flags, paid
// on every start.
func BenchmarkNewRunFlags(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		newRunFlags()
	}
}

// TestListFlagsAsPflags: listVar and sliceVar parse, print and show in
// the usage text as pflag's StringArray and StringSlice do.
func TestListFlagsAsPflags(t *testing.T) {
	define := func(own bool) (*pflag.FlagSet, *[]string, *[]string, *[]string) {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		var arr, slice, plain []string
		if own {
			listVar(fs, &arr, "arr", "a", "add `KEY=VALUE`")
			sliceVar(fs, &slice, "slice", "these `NS[,NS]`")
			listVar(fs, &plain, "plain", "", "no value name")
		} else {
			fs.StringArrayVarP(&arr, "arr", "a", nil, "add `KEY=VALUE`")
			fs.StringSliceVar(&slice, "slice", nil, "these `NS[,NS]`")
			fs.StringArrayVar(&plain, "plain", nil, "no value name")
		}
		return fs, &arr, &slice, &plain
	}
	for _, args := range [][]string{
		nil,
		{"--arr", "x=1,y=2", "-a", `q="z"`, "--slice", "net,pid", "--slice", `ipc,"a,b"`},
		{"--slice", "", "--plain", "", "--plain", "p"},
		{"--slice", `"unterminated`},
	} {
		pf, pa, ps, pp := define(false)
		of, oa, os, op := define(true)
		perr := pf.Parse(args)
		oerr := of.Parse(args)
		assert.Check(t, is.Equal(perr == nil, oerr == nil), "%q: %v, %v", args, perr, oerr)
		if perr != nil {
			continue
		}
		assert.Check(t, is.DeepEqual(*oa, *pa), "%q", args)
		assert.Check(t, is.DeepEqual(*os, *ps), "%q", args)
		assert.Check(t, is.DeepEqual(*op, *pp), "%q", args)
		for _, name := range []string{"arr", "slice", "plain"} {
			if pf.Changed(name) {
				assert.Check(t, is.Equal(of.Lookup(name).Value.String(), pf.Lookup(name).Value.String()), "%s %q", name, args)
			}
		}
		assert.Check(t, is.Equal(of.FlagUsages(), pf.FlagUsages()))
	}
}
