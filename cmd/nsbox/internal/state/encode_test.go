package state

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/nsbox/nsbox/sandbox"
	"gotest.tools/v3/assert"
)

// strings the filler picks from: HTML characters, escapes, invalid
// UTF-8, the line separators encoding/json escapes, plain words.
var fillStrings = []string{"", "a", "\b\f\r\x7f\x1f", "é\xc3", "\xe2\x80", "box", "/usr/bin", "<a&b>", "ü\u2028\u2029", "\x00\n\t\"\\", "\xff\xfe", "0", "x y z", "日本"}

// fill sets every exported field under v at random: nil, empty or full
// slices, maps and pointers, so that omitempty, omitzero and null all
// come up.
func fill(v reflect.Value, r *rand.Rand, depth int) {
	switch v.Type() {
	case reflect.TypeFor[time.Time]():
		if r.IntN(4) > 0 {
			v.Set(reflect.ValueOf(time.Unix(r.Int64N(1<<33), r.Int64N(1e9)).In(time.FixedZone("z", 3600*(r.IntN(5)-2)))))
		}
		return
	case reflect.TypeFor[netip.Addr]():
		addrs := []netip.Addr{{}, netip.MustParseAddr("10.0.2.100"), netip.MustParseAddr("fd00::2")}
		v.Set(reflect.ValueOf(addrs[r.IntN(len(addrs))]))
		return
	case reflect.TypeFor[netip.Prefix]():
		ps := []netip.Prefix{{}, netip.MustParsePrefix("10.0.2.100/24"), netip.MustParsePrefix("fd00::2/64")}
		v.Set(reflect.ValueOf(ps[r.IntN(len(ps))]))
		return
	}
	n := r.IntN(3) // 0: nil, 1: empty, 2: some
	if depth > 6 {
		n = 0
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(r.IntN(2) == 1)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(r.Int64N(2000) - 1000*int64(r.IntN(2)))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(r.Uint64() >> (r.IntN(64)))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(r.NormFloat64())
	case reflect.String:
		v.SetString(fillStrings[r.IntN(len(fillStrings))])
	case reflect.Pointer:
		if n > 0 {
			p := reflect.New(v.Type().Elem())
			fill(p.Elem(), r, depth+1)
			v.Set(p)
		}
	case reflect.Slice:
		if n > 0 {
			s := reflect.MakeSlice(v.Type(), r.IntN(3)*(n-1), 3)
			for i := range s.Len() {
				fill(s.Index(i), r, depth+1)
			}
			v.Set(s)
		}
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i), r, depth+1)
		}
	case reflect.Map:
		if n > 0 {
			m := reflect.MakeMap(v.Type())
			for range r.IntN(4) * (n - 1) {
				k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
				fill(k, r, depth+1)
				fill(e, r, depth+1)
				m.SetMapIndex(k, e)
			}
			v.Set(m)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() && f.Tag.Get("json") != "-" {
				fill(v.Field(i), r, depth+1)
			}
		}
	}
}

// TestMarshalIndentMatchesJSON: for randomly filled entries, the walk
// writes exactly what json.MarshalIndent writes.
func TestMarshalIndentMatchesJSON(t *testing.T) {
	for seed := range uint64(400) {
		r := rand.New(rand.NewPCG(seed, 26))
		var e Entry
		fill(reflect.ValueOf(&e).Elem(), r, 0)
		want, err := json.MarshalIndent(&e, "", "  ")
		assert.NilError(t, err)
		got, err := marshalIndent(&e)
		assert.NilError(t, err)
		assert.Equal(t, string(got), string(want), "seed %d", seed)
	}
}

// TestEntryNeedsNoFallback: Entry, with every pointer set, takes the
// walk, not json.MarshalIndent (the speed it exists for). A field of a
// kind the walk leaves to encoding/json fails it.
func TestEntryNeedsNoFallback(t *testing.T) {
	for seed := range uint64(50) {
		r := rand.New(rand.NewPCG(seed, 1))
		e := Entry{Spec: &sandbox.Spec{}, Network: &Network{}}
		fill(reflect.ValueOf(&e).Elem(), r, 0)
		w := walker{types: map[reflect.Type]typeInfo{}}
		_, err := w.value(nil, reflect.ValueOf(&e))
		assert.NilError(t, err, "seed %d", seed)
	}
}

// TestMarshalIndentFallsBack: constructs the walk does not handle give
// encoding/json's output all the same.
func TestMarshalIndentFallsBack(t *testing.T) {
	type inner struct{ A int }
	for _, v := range []any{
		struct{ inner }{inner{1}},
		struct {
			N int `json:"n,string"`
		}{5},
		map[netip.Addr]int{netip.MustParseAddr("10.0.0.1"): 1},
		struct {
			N json.Number `json:"n"`
			F func()      `json:"-"`
		}{N: "12.5"},
	} {
		want, err := json.MarshalIndent(v, "", "  ")
		assert.NilError(t, err)
		got, err := marshalIndent(v)
		assert.NilError(t, err)
		assert.Equal(t, string(got), string(want))
	}
	_, err := marshalIndent(struct{ F func() }{})
	assert.ErrorContains(t, err, "unsupported type")
}

func BenchmarkFirstRecord(b *testing.B) {
	e := &Entry{Name: "x", Spec: &sandbox.Spec{}, Network: &Network{}}
	for range b.N {
		marshalIndent(e)
	}
}

// FuzzAppendString: the string escaper writes what json.Marshal writes.
func FuzzAppendString(f *testing.F) {
	for _, s := range fillStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		assert.NilError(t, err)
		assert.Equal(t, string(appendString(nil, s)), string(want))
	})
}

// TestAppendStringBytes: every single byte, and random byte strings.
func TestAppendStringBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	var ss []string
	for c := range 256 {
		ss = append(ss, string([]byte{byte(c)}), "a"+string([]byte{byte(c)})+"\u2029")
	}
	for range 2000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		ss = append(ss, string(b))
	}
	for _, s := range ss {
		want, _ := json.Marshal(s)
		assert.Equal(t, string(appendString(nil, s)), string(want), "%q", s)
	}
}
