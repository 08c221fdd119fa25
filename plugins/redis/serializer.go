package taskiqredis

import (
	"errors"

	"github.com/taskiq-go/taskiq/internal/resultcodec"
	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Serializers of the result backend: how results and progress are stored.
const (
	serializerJSON   = resultcodec.JSON   // the JSON of the wire format (taskiq-redis JSONSerializer)
	serializerPickle = resultcodec.Pickle // pickle protocol 4 of that JSON (taskiq-redis's default PickleSerializer)
)

// errStored marks a stored value this backend cannot turn into a result: the
// error is final (a wait ends with it instead of retrying).
var errStored = errors.New("stored value unreadable")

// storedError is a stored value that cannot be read, with the reason (an
// error wrapping wire.ErrMalformed).
type storedError struct{ err error }

func (e *storedError) Error() string { return e.err.Error() }

func (e *storedError) Unwrap() []error { return []error{errStored, e.err} }

// codec is how this backend stores results and progress.
func (r *resultBackend) codec() resultcodec.Codec {
	return resultcodec.Codec{Pickle: r.opts.serializer == serializerPickle,
		Origin:      "taskiq-redis's default PickleSerializer",
		Alternative: ", or use serializer=JSONSerializer() in the Python RedisAsyncResultBackend"}
}

// encodeStored turns the JSON the host sends into the stored form.
func (r *resultBackend) encodeStored(body []byte) ([]byte, error) {
	return r.codec().Encode(body)
}

// decodeStored turns a stored value back into JSON. what and taskID name
// it for the error ("result of task", X). JSON is read with either
// serializer (a pickle never starts with '{').
func (r *resultBackend) decodeStored(what, taskID string, stored []byte) ([]byte, error) {
	b, err := r.codec().Decode(what, taskID, stored)
	if err != nil {
		return nil, &storedError{err}
	}
	return b, nil
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
