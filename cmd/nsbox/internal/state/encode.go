package state

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The state record is written once per sandbox, by a process that has
// never encoded an Entry before. encoding/json spends most of that first
// call building, by reflection, an encoder for every struct type under
// Entry (sandbox.Spec has dozens): 0.3–0.37 ms of CPU per start, against
// 0.01 ms for the encoding itself. Every `nsbox run` pays it, and with
// many sandboxes starting at once it is CPU the machine does not have.
//
// marshalIndent walks the value once instead, with encoding/json's rules
// for the constructs Entry uses, and gives every leaf (strings, numbers,
// a type with its own MarshalJSON or MarshalText) to encoding/json
// itself, whose encoders for those are cheap to build; the result is
// indented by json.Indent, as json.MarshalIndent does. Anything the walk
// does not know (an embedded struct, a ",string" option, an interface
// with an IsZero method, a map key that is not a string or an integer)
// makes it hand the whole value to json.MarshalIndent, so the output is
// always encoding/json's; TestMarshalIndentMatchesJSON compares the two
// on randomly filled entries, and TestEntryNeedsNoFallback checks that
// Entry takes the fast way.

// errFallback: the walk met something it leaves to encoding/json.
var errFallback = errors.New("not handled by the walk")

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	isZeroerType      = reflect.TypeFor[interface{ IsZero() bool }]()
	numberType        = reflect.TypeFor[json.Number]()
)

// marshalIndent is json.MarshalIndent(v, "", "  "), cheaper for a type
// encoded once per process.
func marshalIndent(v any) ([]byte, error) {
	w := walker{types: map[reflect.Type]typeInfo{}}
	compact, err := w.value(nil, reflect.ValueOf(v))
	var out bytes.Buffer
	if err == nil {
		err = json.Indent(&out, compact, "", "  ")
	}
	if err != nil {
		// errFallback, or a MarshalJSON that failed: encoding/json's
		// own output, or its own error.
		return json.MarshalIndent(v, "", "  ")
	}
	return out.Bytes(), nil
}

// walker keeps what it learnt of each type for the rest of one value.
type walker struct {
	types map[reflect.Type]typeInfo
}

// typeInfo is how a type is written.
type typeInfo struct {
	self     bool    // the type has MarshalJSON or MarshalText (encoding/json calls it)
	addrSelf bool    // *T has one: called where the value is addressable
	fields   []field // a struct's fields, in order
	err      error   // errFallback for a struct the walk leaves to encoding/json
}

// field is one struct field that json writes.
type field struct {
	index     int
	name      string // the name, as the tag (or the field) gives it
	key       []byte // the name, encoded, with its colon
	omitEmpty bool
	omitZero  bool
}

func (w *walker) info(t reflect.Type) typeInfo {
	if ti, ok := w.types[t]; ok {
		return ti
	}
	var ti typeInfo
	ti.self = t.Implements(marshalerType) || t.Implements(textMarshalerType)
	if k := t.Kind(); k != reflect.Pointer && k != reflect.Interface {
		pt := reflect.PointerTo(t)
		ti.addrSelf = !ti.self && (pt.Implements(marshalerType) || pt.Implements(textMarshalerType))
	}
	if t.Kind() == reflect.Struct && !ti.self {
		ti.fields, ti.err = structFields(t)
	}
	w.types[t] = ti
	return ti
}

// value appends v's compact JSON, as json.Marshal writes it.
func (w *walker) value(b []byte, v reflect.Value) ([]byte, error) {
	if !v.IsValid() {
		return append(b, "null"...), nil
	}
	t := v.Type()
	ti := w.info(t)
	// A type that encodes itself, as encoding/json would call it: on the
	// value, or on its address where the value is addressable.
	switch {
	case ti.self:
		return appendLeaf(b, v.Interface())
	case ti.addrSelf && v.CanAddr():
		return appendLeaf(b, v.Addr().Interface())
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		return w.value(b, v.Elem())
	case reflect.Struct:
		return w.structValue(b, v, ti)
	case reflect.Map:
		return w.mapValue(b, v)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return appendLeaf(b, v.Interface()) // base64, or the elements' own encoding
		}
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		return w.list(b, v)
	case reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return appendLeaf(b, v.Interface())
		}
		return w.list(b, v)
	case reflect.Bool:
		return strconv.AppendBool(b, v.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(b, v.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.AppendUint(b, v.Uint(), 10), nil
	case reflect.String:
		if t == numberType {
			return appendLeaf(b, v.Interface()) // a json.Number is written as a number
		}
		return appendString(b, v.String()), nil
	case reflect.Float32, reflect.Float64:
		return appendLeaf(b, v.Interface())
	}
	return b, errFallback // func, chan, complex, unsafe pointer
}

// appendLeaf appends encoding/json's own encoding of x, a value whose
// encoder is cheap to build (no struct fields to reflect on).
func appendLeaf(b []byte, x any) ([]byte, error) {
	j, err := json.Marshal(x)
	return append(b, j...), err
}

func (w *walker) list(b []byte, v reflect.Value) ([]byte, error) {
	b = append(b, '[')
	for i := range v.Len() {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = w.value(b, v.Index(i)); err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

// mapValue writes the entries sorted by their keys' text, as
// encoding/json does; keys are strings or integers.
func (w *walker) mapValue(b []byte, v reflect.Value) ([]byte, error) {
	if v.IsNil() {
		return append(b, "null"...), nil
	}
	kt := v.Type().Key()
	if kt.Implements(textMarshalerType) {
		return b, errFallback
	}
	type entry struct {
		key string
		val reflect.Value
	}
	var es []entry
	for it := v.MapRange(); it.Next(); {
		k := it.Key()
		var s string
		switch kt.Kind() {
		case reflect.String:
			s = k.String()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			s = strconv.FormatInt(k.Int(), 10)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			s = strconv.FormatUint(k.Uint(), 10)
		default:
			return b, errFallback
		}
		es = append(es, entry{s, it.Value()})
	}
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	b = append(b, '{')
	for i, e := range es {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendString(b, e.key), ':')
		var err error
		if b, err = w.value(b, e.val); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

// structValue writes the fields structFields chose.
func (w *walker) structValue(b []byte, v reflect.Value, ti typeInfo) ([]byte, error) {
	if ti.err != nil {
		return b, ti.err
	}
	b = append(b, '{')
	first := true
	for _, f := range ti.fields {
		fv := v.Field(f.index)
		if f.omitEmpty && isEmpty(fv) {
			continue
		}
		if f.omitZero {
			zero, err := isZero(fv)
			if err != nil {
				return b, err
			}
			if zero {
				continue
			}
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, f.key...)
		var err error
		if b, err = w.value(b, fv); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

// structFields lists the exported fields of t in declaration order,
// named and left out as their json tags say.
func structFields(t reflect.Type) ([]field, error) {
	var fs []field
	seen := map[string]bool{}
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Anonymous {
			return nil, errFallback // embedding: encoding/json's promotion rules
		}
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = sf.Name
		} else if !validTag(name) {
			return nil, errFallback
		}
		if seen[name] {
			return nil, errFallback // two fields of one name: dominance rules
		}
		seen[name] = true
		f := field{index: i, name: name, key: append(appendString(nil, name), ':')}
		for _, o := range strings.Split(opts, ",") {
			switch o {
			case "":
			case "omitempty":
				f.omitEmpty = true
			case "omitzero":
				f.omitZero = true
			default:
				return nil, errFallback // ",string" and options of later Go versions
			}
		}
		fs = append(fs, f)
	}
	return fs, nil
}

// appendString appends s as a JSON string exactly as json.Marshal writes
// it: ", \\ and control characters escaped (\b \f \n \r \t short), <, >
// and & as \u003c \u003e \u0026, invalid UTF-8 as \ufffd, U+2028 and
// U+2029 as \u2028 and \u2029.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(append(b, s[start:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(append(b, s[start:]...), '"')
}

// validTag is encoding/json's test of a tag's name; a name it refuses
// makes it use the field's, a case the walk leaves to it.
func validTag(s string) bool {
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
		case c > 127:
			return false // letters of other scripts: left to encoding/json
		default:
			return false
		}
	}
	return true
}

// isEmpty is omitempty's test.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

// isZero is omitzero's test: the type's IsZero method where it has one,
// else the zero value.
func isZero(v reflect.Value) (bool, error) {
	t := v.Type()
	switch {
	case t.Kind() == reflect.Interface && t.Implements(isZeroerType):
		return false, errFallback
	case t.Kind() == reflect.Pointer && t.Implements(isZeroerType):
		return v.IsNil() || v.Interface().(interface{ IsZero() bool }).IsZero(), nil
	case t.Implements(isZeroerType):
		return v.Interface().(interface{ IsZero() bool }).IsZero(), nil
	case reflect.PointerTo(t).Implements(isZeroerType):
		if !v.CanAddr() {
			c := reflect.New(t).Elem()
			c.Set(v)
			v = c
		}
		return v.Addr().Interface().(interface{ IsZero() bool }).IsZero(), nil
	}
	return v.IsZero(), nil
}
