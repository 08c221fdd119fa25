package resultcodec

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/internal/pickle"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

func TestRoundTrip(t *testing.T) {
	body := []byte(`{"is_err":false,"return_value":{"sum":3},"labels":{}}`)
	j := Codec{}
	stored, err := j.Encode(body)
	require.NoError(t, err)
	require.Equal(t, body, stored, "json stores the body as it is")

	p := Codec{Pickle: true}
	stored, err = p.Encode(body)
	require.NoError(t, err)
	require.True(t, IsPickle(stored))
	got, err := p.Decode("result of task", "x", stored)
	require.NoError(t, err)
	require.JSONEq(t, string(body), string(got))
	got, err = p.Decode("result of task", "x", body)
	require.NoError(t, err)
	require.Equal(t, body, got, "JSON is still read with pickle")
}

func TestErrors(t *testing.T) {
	stored, err := pickle.FromJSON([]byte(`{"a":1}`))
	require.NoError(t, err)
	_, err = Codec{Origin: "Python's PickleSerializer", Alternative: ", or store JSON"}.Decode("result of task", "x", stored)
	require.ErrorIs(t, err, wire.ErrMalformed)
	require.EqualError(t, err, `malformed message: result of task x is a pickle (Python's PickleSerializer): set serializer = "pickle" in this result backend's config, or store JSON`)
	_, err = Codec{}.Decode("the value of", "k", stored)
	require.EqualError(t, err, `malformed message: the value of k is a pickle: set serializer = "pickle" in this result backend's config`)

	_, err = Codec{Pickle: true}.Decode("result of task", "x", []byte{0x80, 0x04, 0xff})
	require.ErrorIs(t, err, wire.ErrMalformed)
	require.True(t, errors.Is(err, pickle.ErrMalformed) || errors.Is(err, pickle.ErrUnsupported), "got %v", err)

	_, err = Codec{Pickle: true}.Encode([]byte(`not json`))
	require.ErrorIs(t, err, wire.ErrMalformed)
}
