package wire

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/taskiq-go/taskiq/internal/plainjson"
)

// LabelText returns the text and the label type (LabelStr, LabelInt, ...)
// a message label travels as: what AppendJSON writes for it in labels and
// labels_types.
func LabelText(v any) (text string, typ int) { return labelText(v) }

// LabelFromText returns the value DecodeMessage gives a label that travels
// as text with type typ. LabelFromText(LabelText(v)) is v as it reads back
// from the wire.
func LabelFromText(text string, typ int) any { return typedLabel(text, typ) }

// AppendResultLabel appends the JSON of a result label's value, as
// EncodeResult writes it in the labels object.
func AppendResultLabel(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		if b, ok := plainjson.AppendString(dst, x); ok {
			return b, nil
		}
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case nil:
		return append(dst, "null"...), nil
	case float64:
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			return appendJSONFloat(dst, x), nil
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("result label: %w", err)
	}
	return append(dst, b...), nil
}

// DecodeResultLabel decodes a result label's JSON as DecodeResult decodes
// the values of the labels object (numbers as float64); errors wrap
// ErrMalformed.
func DecodeResultLabel(b []byte) (any, error) {
	s := scanner{b: b}
	v, ok := s.scalar()
	if s.space(); ok && s.i == len(b) {
		return v, nil
	}
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		return nil, fmt.Errorf("%w: result label: %v", ErrMalformed, err)
	}
	return x, nil
}
