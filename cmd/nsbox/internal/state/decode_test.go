package state

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/nsbox/nsbox/sandbox"
	"gotest.tools/v3/assert"
)

// TestUnmarshalMatchesJSON: on randomly filled entries, written as nsbox
// writes them, unmarshal gives what json.Unmarshal gives.
func TestUnmarshalMatchesJSON(t *testing.T) {
	for seed := range uint64(400) {
		r := rand.New(rand.NewPCG(seed, 27))
		var e Entry
		fill(reflect.ValueOf(&e).Elem(), r, 0)
		b, err := marshalIndent(&e)
		assert.NilError(t, err)
		var want Entry
		werr := json.Unmarshal(b, &want)
		got, err := unmarshal[Entry](b)
		if werr != nil { // the filler's capability sets can name bits the kernel lacks
			assert.Error(t, err, werr.Error())
			continue
		}
		assert.NilError(t, err)
		assert.Assert(t, reflect.DeepEqual(got, want), "%s", b)
	}
}

// TestEntryDecodesWithoutFallback: a record nsbox writes, with every
// pointer set, is decoded by the walk alone (the speed it exists for).
func TestEntryDecodesWithoutFallback(t *testing.T) {
	for seed := range uint64(50) {
		r := rand.New(rand.NewPCG(seed, 2))
		e := Entry{Spec: &sandbox.Spec{}, Network: &Network{}}
		fill(reflect.ValueOf(&e).Elem(), r, 0)
		b, err := marshalIndent(&e)
		assert.NilError(t, err)
		if json.Unmarshal(b, new(Entry)) != nil {
			continue // a capability set the kernel cannot have
		}
		d := decoder{walker: walker{types: map[reflect.Type]typeInfo{}}}
		var got Entry
		assert.NilError(t, d.value(b, reflect.ValueOf(&got).Elem()), "seed %d", seed)
	}
}

// TestUnmarshalFallsBack: what the walk leaves to encoding/json gives
// its result and its error all the same.
func TestUnmarshalFallsBack(t *testing.T) {
	for _, in := range []string{
		`{"name":"a","name":"b","pid":1}`,            // a key twice
		`{"NAME":"a","pid":1}`,                       // a key but for case
		`{"name":"a\u00e9","pid":"1"}`,               // an escape; a string for a number
		`{"name":"a","pid":1.5}`,                     // a fraction
		`{"name":"a","pid":99999999999999999999999}`, // out of range
		`{"name":"a","pid":1,"spec":null,"unknown":[1,{"x":2}]}`,
		`{"name":"a","pid":1,"spec":{"env":{"A\u0042":"1"}}}`,
		`{"name":"a"`,
		`[1,2]`,
		`null`,
		` {"name" : "a" , "pid" : 1 } `,
	} {
		var want Entry
		werr := json.Unmarshal([]byte(in), &want)
		got, err := unmarshal[Entry]([]byte(in))
		if werr != nil {
			assert.Error(t, err, werr.Error(), in)
			continue
		}
		assert.NilError(t, err, in)
		assert.Assert(t, reflect.DeepEqual(got, want), "%s", in)
	}
}

// FuzzUnmarshalMatchesJSON: whatever the input, unmarshal and
// json.Unmarshal agree, on the value and on the error.
func FuzzUnmarshalMatchesJSON(f *testing.F) {
	e := Entry{Name: "a", Pid: 3, Spec: &sandbox.Spec{}, Network: &Network{}}
	fill(reflect.ValueOf(&e).Elem(), rand.New(rand.NewPCG(1, 2)), 0)
	b, _ := marshalIndent(&e)
	f.Add(b)
	f.Add([]byte(`{"name":"x","pid":1,"spec":{"argv":["a"],"env":{"K":"v"}}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var want Entry
		werr := json.Unmarshal(in, &want)
		got, err := unmarshal[Entry](in)
		if werr != nil {
			if err == nil || err.Error() != werr.Error() {
				t.Fatalf("json: %v; unmarshal: %v", werr, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("differs:\n%+v\n%+v", got, want)
		}
	})
}

func BenchmarkFirstDecode(b *testing.B) {
	e := Entry{Name: "x", Pid: 1, Spec: &sandbox.Spec{}, Network: &Network{}}
	fill(reflect.ValueOf(&e).Elem(), rand.New(rand.NewPCG(3, 4)), 0)
	raw, _ := marshalIndent(&e)
	for range b.N {
		unmarshal[Entry](raw)
	}
}
