package taskiqredis

import (
	"errors"
	"fmt"

	"github.com/taskiq-go/taskiq/internal/pickle"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// Serializers of the result backend: how results and progress are stored.
const (
	serializerJSON   = "json"   // the JSON of the wire format (taskiq-redis JSONSerializer)
	serializerPickle = "pickle" // pickle protocol 4 of that JSON (taskiq-redis's default PickleSerializer)
)

// pickleOpcode starts every pickle of protocol 2 and above (PROTO).
const pickleOpcode = 0x80

// errStored marks a stored value this backend cannot turn into a result: the
// error is final (a wait ends with it instead of retrying).
var errStored = errors.New("stored value unreadable")

// storedError is a stored value that cannot be read, with the reason.
type storedError struct{ msg string }

func (e *storedError) Error() string { return e.msg }

func (e *storedError) Unwrap() []error { return []error{errStored, wire.ErrMalformed} }

// encodeStored turns the JSON the host sends into the stored form.
func (r *resultBackend) encodeStored(body []byte) ([]byte, error) {
	if r.opts.serializer != serializerPickle {
		return body, nil
	}
	b, err := pickle.FromJSON(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", wire.ErrMalformed, err)
	}
	return b, nil
}

// decodeStored turns a stored value back into JSON. what names it for the
// error ("result of task X").
func (r *resultBackend) decodeStored(what string, stored []byte) ([]byte, error) {
	isPickle := len(stored) > 0 && stored[0] == pickleOpcode
	switch {
	case r.opts.serializer == serializerPickle && isPickle:
		b, err := pickle.ToJSON(stored)
		if err != nil {
			return nil, &storedError{fmt.Sprintf("%s: %s: %v", wire.ErrMalformed, what, err)}
		}
		return b, nil
	case isPickle:
		return nil, &storedError{fmt.Sprintf("%s: %s is a pickle (taskiq-redis's default "+
			"PickleSerializer): set serializer = \"pickle\" in this result backend's config, or use "+
			"serializer=JSONSerializer() in the Python RedisAsyncResultBackend", wire.ErrMalformed, what)}
	}
	// JSON: as stored by serializer "json", or by this backend before it
	// was switched to "pickle" (a pickle never starts with '{').
	return stored, nil
}

func serializerAttribute() sdk.Attribute {
	return sdk.Attribute{Name: "serializer", Type: sdk.TypeString, Default: serializerJSON,
		Description: `How results and progress are stored: "json" (taskiq-redis ` +
			`JSONSerializer) or "pickle" (protocol 4 of the same values, taskiq-redis's default ` +
			`PickleSerializer: use it beside Python services whose RedisAsyncResultBackend keeps ` +
			`its default). Only plain data is read from a pickle (dict, list, str, int, float, ` +
			`bool, None); nothing a pickle names is imported or called. With "pickle", JSON values ` +
			`are still read.`}
}
