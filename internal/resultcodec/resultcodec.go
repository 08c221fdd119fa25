// Package resultcodec is how the result backends of the plugins store the
// result and progress JSON the host sends: as it is (serializer "json") or
// as a pickle of protocol 4 of the same values (serializer "pickle", the
// default of Python taskiq's PickleSerializer), with [pickle] doing the
// conversion. A backend holds one [Codec] and calls Encode before it writes
// and Decode after it reads.
package resultcodec

import (
	"fmt"

	"github.com/taskiq-go/taskiq/internal/pickle"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// Serializer names, the values of a result backend's serializer attribute.
const (
	JSON   = "json"
	Pickle = "pickle"
)

// protoOpcode starts every pickle of protocol 2 and above (PROTO); JSON
// never starts with it.
const protoOpcode = 0x80

// IsPickle reports whether a stored value is a pickle.
func IsPickle(stored []byte) bool { return len(stored) > 0 && stored[0] == protoOpcode }

// Codec converts between the JSON the host sends and the stored form.
type Codec struct {
	// Pickle stores pickles. JSON values are read either way (stored
	// before the backend was switched to pickle).
	Pickle bool
	// Origin, when set, says in the error of a pickle read without Pickle
	// who writes such pickles: "(Origin)" follows "is a pickle".
	Origin string
	// Alternative, when set, ends that error: what else to change, on the
	// writer's side (", or use ..." reads best).
	Alternative string
}

// Encode turns the JSON the host sends into the stored form. JSON that
// cannot be pickled (not plain data) is an error wrapping wire.ErrMalformed.
func (c Codec) Encode(body []byte) ([]byte, error) {
	if !c.Pickle {
		return body, nil
	}
	b, err := pickle.FromJSON(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", wire.ErrMalformed, err)
	}
	return b, nil
}

// Decode turns a stored value back into JSON; what and id name the value
// in errors ("result of task", "X"), joined only when there is one, so a
// read that succeeds builds no string. A pickle is read only with Pickle
// set; a pickle read without it, or one that is not plain data, is an
// error wrapping wire.ErrMalformed that says which serializer to set.
func (c Codec) Decode(what, id string, stored []byte) ([]byte, error) {
	if !IsPickle(stored) {
		return stored, nil
	}
	if !c.Pickle {
		origin := ""
		if c.Origin != "" {
			origin = " (" + c.Origin + ")"
		}
		return nil, fmt.Errorf("%w: %s %s is a pickle%s: set serializer = %q in this result backend's config%s",
			wire.ErrMalformed, what, id, origin, Pickle, c.Alternative)
	}
	b, err := pickle.ToJSON(stored)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %w", wire.ErrMalformed, what, id, err)
	}
	return b, nil
}
