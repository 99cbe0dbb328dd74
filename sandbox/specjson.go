package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/nsbox/nsbox/sandbox/internal/stage"
)

// maxSpecSize bounds a JSON spec: the command line and environment it
// carries must fit one stage message anyway.
const maxSpecSize = stage.MaxPayload

// DecodeSpec reads a Spec in the JSON form encoding/json gives it (and
// `nsbox run --print-spec` prints), strictly: unknown fields, trailing data
// and more than one value are errors, so a misspelt field is never silently
// ignored. The result is checked with Validate.
//
// The id maps are taken as written. A spec from someone else is untrusted:
// the caller should re-check its Mapping against its own ids (mapping.Plan
// Validate) and look the helpers up itself, as `nsbox run --spec` does.
func DecodeSpec(r io.Reader) (*Spec, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSpecSize+1))
	if err != nil {
		return nil, fmt.Errorf("read the spec: %w", err)
	}
	if len(b) > maxSpecSize {
		return nil, fmt.Errorf("spec is larger than %d bytes", maxSpecSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decode the spec: %w", jsonError(b, err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("decode the spec: data after the spec's closing brace")
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// jsonError adds the line and column to a syntax or type error.
func jsonError(b []byte, err error) error {
	var off int64
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	default:
		return err
	}
	// Offset counts the bytes read, the offending one included.
	pos := min(max(off-1, 0), int64(len(b)))
	line := 1 + bytes.Count(b[:pos], []byte("\n"))
	col := pos - int64(bytes.LastIndexByte(b[:pos], '\n'))
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}
