package state

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Every command that looks a sandbox up (ps, exec, kill, mount, port,
// cp, ...) decodes a state.json once, in a process that has never
// decoded an Entry before, and encoding/json spends most of that first
// call building, by reflection, a decoder for every struct type under
// Entry: about 0.6 ms of a 5 ms `nsbox mount` here, where the decoding
// itself is a few microseconds. unmarshal is the same trade as
// marshalIndent's (encode.go): one walk over the value, with
// encoding/json's rules for what Entry is made of (structs, pointers,
// slices, maps with string keys, strings, booleans and integers), and
// every other leaf (floats, interfaces, byte slices, arrays, a type
// with its own UnmarshalJSON or UnmarshalText) handed to json.Unmarshal,
// whose decoders for those are cheap to build.
//
// Whatever the walk does not decide alone (a JSON value of another type
// than the field's, a key given twice, an integer out of range, an embedded struct or a ",string" option)
// makes it start again with json.Unmarshal on a fresh value, so the
// result and the error are always encoding/json's:
// TestUnmarshalMatchesJSON compares the two on randomly filled entries,
// FuzzUnmarshalMatchesJSON on any input, and TestEntryDecodesWithoutFallback
// checks that Entry takes the walk.

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// unmarshal is json.Unmarshal(b, &x) for a fresh x, cheaper for a type
// decoded once per process.
func unmarshal[T any](b []byte) (T, error) {
	var x T
	if json.Valid(b) {
		d := decoder{walker: walker{types: map[reflect.Type]typeInfo{}}}
		if err := d.value(bytes.TrimSpace(b), reflect.ValueOf(&x).Elem()); err == nil {
			return x, nil
		}
	}
	var y T
	err := json.Unmarshal(b, &y)
	return y, err
}

// decoder walks a JSON text that json.Valid accepted; its struct
// fields are the encoder's (structFields).
type decoder struct {
	walker
	leaves map[reflect.Type]bool
}

// leaf reports whether values of t go to json.Unmarshal whole: a type
// that decodes itself (on itself or its address), an interface, and
// the kinds the walk leaves alone.
func (d *decoder) leaf(t reflect.Type) bool {
	if l, ok := d.leaves[t]; ok {
		return l
	}
	pt := reflect.PointerTo(t)
	l := t.Implements(unmarshalerType) || t.Implements(textUnmarshalerType) ||
		pt.Implements(unmarshalerType) || pt.Implements(textUnmarshalerType)
	switch t.Kind() {
	case reflect.Struct, reflect.Pointer, reflect.Map, reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
	case reflect.Slice:
		l = l || t.Elem().Kind() == reflect.Uint8 // base64, or the elements' own decoding
	default:
		l = true // interfaces, floats, arrays, and what json refuses
	}
	if d.leaves == nil {
		d.leaves = map[reflect.Type]bool{}
	}
	d.leaves[t] = l
	return l
}

// value decodes the JSON value raw (no surrounding space) into v, which
// is addressable. errFallback, or any error, sends the whole text to
// json.Unmarshal.
func (d *decoder) value(raw []byte, v reflect.Value) error {
	t := v.Type()
	if d.leaf(t) {
		return json.Unmarshal(raw, v.Addr().Interface())
	}
	if raw[0] == 'n' { // null
		switch t.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice:
			v.SetZero()
		}
		return nil // no effect on anything else
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return d.value(raw, v.Elem())
	case reflect.Struct:
		return d.object(raw, v)
	case reflect.Map:
		return d.mapValue(raw, v)
	case reflect.Slice:
		return d.list(raw, v)
	case reflect.String:
		if raw[0] != '"' {
			return errFallback
		}
		s, err := stringOf(raw)
		if err != nil {
			return err
		}
		v.SetString(s)
	case reflect.Bool:
		switch raw[0] {
		case 't':
			v.SetBool(true)
		case 'f':
			v.SetBool(false)
		default:
			return errFallback
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || v.OverflowInt(n) {
			return errFallback // a fraction, an exponent, out of range, not a number
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, err := strconv.ParseUint(string(raw), 10, 64)
		if err != nil || v.OverflowUint(n) {
			return errFallback
		}
		v.SetUint(n)
	default:
		return errFallback
	}
	return nil
}

// stringOf returns the text of the JSON string raw: its bytes when it
// has no escape and is valid UTF-8, else what json.Unmarshal makes of
// it (escapes, and U+FFFD for invalid bytes).
func stringOf(raw []byte) (string, error) {
	in := raw[1 : len(raw)-1]
	if bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
		return string(in), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// object decodes a JSON object into the struct v: each key to the
// field of that name, else to one whose name matches it but for case,
// as encoding/json does; unknown keys are skipped.
func (d *decoder) object(raw []byte, v reflect.Value) error {
	if raw[0] != '{' {
		return errFallback
	}
	ti := d.info(v.Type())
	if ti.err != nil {
		return ti.err
	}
	var seen []bool
	return members(raw, func(key, val []byte) error {
		name, err := stringOf(key)
		if err != nil {
			return err
		}
		i := fieldIndex(ti.fields, name)
		if i < 0 {
			return nil
		}
		if seen == nil {
			seen = make([]bool, len(ti.fields))
		}
		if seen[i] {
			return errFallback // a key given twice: encoding/json merges
		}
		seen[i] = true
		return d.value(val, v.Field(ti.fields[i].index))
	})
}

// fieldIndex finds the field named name in fs: exactly, else but for
// case (strings.EqualFold, encoding/json's rule); -1 if none.
func fieldIndex(fs []field, name string) int {
	fold := -1
	for i, f := range fs {
		if f.name == name {
			return i
		}
		if fold < 0 && strings.EqualFold(f.name, name) {
			fold = i
		}
	}
	return fold
}

// mapValue decodes a JSON object into a map with string keys, adding to
// it (encoding/json keeps a map's entries).
func (d *decoder) mapValue(raw []byte, v reflect.Value) error {
	t := v.Type()
	if raw[0] != '{' || t.Key().Kind() != reflect.String || d.leaf(t.Key()) {
		return errFallback
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	return members(raw, func(key, val []byte) error {
		k, err := stringOf(key)
		if err != nil {
			return err
		}
		e := reflect.New(t.Elem()).Elem()
		if err := d.value(val, e); err != nil {
			return err
		}
		v.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), e)
		return nil
	})
}

// list decodes a JSON array into a slice, from length zero.
func (d *decoder) list(raw []byte, v reflect.Value) error {
	if raw[0] != '[' {
		return errFallback
	}
	t := v.Type()
	s := reflect.MakeSlice(t, 0, 0)
	err := elements(raw, func(val []byte) error {
		e := reflect.New(t.Elem()).Elem()
		if err := d.value(val, e); err != nil {
			return err
		}
		s = reflect.Append(s, e)
		return nil
	})
	v.Set(s)
	return err
}

// members calls f with each key (a JSON string) and value of the object
// raw, which json.Valid accepted.
func members(raw []byte, f func(key, val []byte) error) error {
	i := skipSpace(raw, 1)
	for raw[i] != '}' {
		kEnd := valueEnd(raw, i)
		key := raw[i:kEnd]
		i = skipSpace(raw, skipSpace(raw, kEnd)+1) // past ':'
		vEnd := valueEnd(raw, i)
		if err := f(key, raw[i:vEnd]); err != nil {
			return err
		}
		i = skipSpace(raw, vEnd)
		if raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return nil
}

// elements calls f with each value of the array raw.
func elements(raw []byte, f func(val []byte) error) error {
	i := skipSpace(raw, 1)
	for raw[i] != ']' {
		end := valueEnd(raw, i)
		if err := f(raw[i:end]); err != nil {
			return err
		}
		i = skipSpace(raw, end)
		if raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns where the JSON value that starts at b[i] ends; b is
// valid JSON.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		for i++; ; i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = valueEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(b) && !strings.ContainsRune(",}] \t\n\r", rune(b[i])) {
		i++
	}
	return i
}
