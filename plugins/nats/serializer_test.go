package taskiqnats

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// TestPickleResultsInTheBucket: with serializer = "pickle" the bucket holds
// pickles, which every read turns back into the JSON that was stored.
func TestPickleResultsInTheBucket(t *testing.T) {
	url := natsURL(t)
	bucket := "wtnats_pickle_" + randomHex(4)
	t.Cleanup(func() { cleanupPrefix(t, url, "KV_"+bucket) })
	r, err := newResultBackend(ctxT(t), cfgOf(t, map[string]any{"servers": []string{url}, "bucket": bucket, "serializer": "pickle"}))
	require.NoError(t, err)
	defer r.Close(ctxT(t))

	body := []byte(`{"is_err":false,"log":null,"return_value":{"sum":3},"execution_time":0.25,"labels":{},"error":null}`)
	const id = "5f1c0e7d9a2b4c6e8f0a1b2c3d4e5f60"
	require.NoError(t, r.SetResults(ctxT(t), []sdk.StoredResult{{TaskID: id, Body: body}}))
	kv, err := r.bucket(ctxT(t))
	require.NoError(t, err)
	raw, err := kv.Get(ctxT(t), id)
	require.NoError(t, err)
	require.Equal(t, byte(0x80), raw.Value()[0], "the bucket holds a pickle")

	got, err := r.GetResult(ctxT(t), id)
	require.NoError(t, err)
	require.JSONEq(t, string(body), string(got))
	got, err = r.WaitResult(ctxT(t), id)
	require.NoError(t, err)
	require.JSONEq(t, string(body), string(got))

	require.NoError(t, r.SetProgress(ctxT(t), id, []byte(`{"state":"STARTED","meta":{"done":1}}`)))
	got, err = r.GetProgress(ctxT(t), id)
	require.NoError(t, err)
	require.JSONEq(t, `{"state":"STARTED","meta":{"done":1}}`, string(got))
}
