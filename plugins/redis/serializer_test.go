package taskiqredis

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// pickleFixture is a value stored by Python taskiq 0.12.4 + taskiq-redis
// 1.2.2 with its default PickleSerializer (testdata/pickle_results.json).
type pickleFixture struct {
	Key    string          `json:"key"`
	Pickle string          `json:"pickle_b64"`
	JSON   json.RawMessage `json:"as_json"`
}

func pickleFixtures(t *testing.T) map[string]pickleFixture {
	t.Helper()
	raw, err := os.ReadFile("testdata/pickle_results.json")
	require.NoError(t, err)
	var fx map[string]pickleFixture
	require.NoError(t, json.Unmarshal(raw, &fx))
	return fx
}

func (f pickleFixture) stored(t *testing.T) []byte {
	b, err := base64.StdEncoding.DecodeString(f.Pickle)
	require.NoError(t, err)
	return b
}

// eachFixture calls f for every fixture, in name order, with its key in this
// test's keyspace and, for a progress key, the task id it belongs to.
func eachFixture(t *testing.T, e *testEnv, f func(name string, fx pickleFixture, key, progressOf string)) {
	fx := pickleFixtures(t)
	var names []string
	for n := range fx {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		key := e.queue(fx[name].Key)
		id, _ := strings.CutSuffix(key, "__progress")
		if id == key {
			id = ""
		}
		f(name, fx[name], key, id)
	}
}

func TestResultSerializer(t *testing.T) {
	t.Parallel()
	runSuite(t, map[string]func(t *testing.T, e *testEnv){
		"PickleReadsPython":  testPickleReadsPython,
		"PickleWritesPython": testPickleWritesPython,
		"PickleReadsJSON":    testPickleReadsJSON,
		"PickleRefuses":      testPickleRefusesObjects,
		"JSONRefusesPickle":  testJSONRefusesPickle,
	})
}

// A Python worker's results and progress, as Go reads them.
func testPickleReadsPython(t *testing.T, e *testEnv) {
	r := e.results(t, map[string]any{"serializer": "pickle"})
	eachFixture(t, e, func(name string, f pickleFixture, key, progressOf string) {
		require.NoError(t, e.rdb.Set(ctxT(t), key, f.stored(t), 0).Err())
		var got []byte
		var err error
		if progressOf != "" {
			got, err = r.GetProgress(ctxT(t), progressOf)
		} else {
			got, err = r.GetResult(ctxT(t), key)
			if err == nil {
				_, derr := wire.DecodeResult(got)
				require.NoError(t, derr, name)
				waited, werr := r.WaitResult(ctxT(t), key)
				require.NoError(t, werr, name)
				require.Equal(t, got, waited, name)
			}
		}
		require.NoError(t, err, name)
		require.JSONEq(t, string(f.JSON), string(got), name)
	})
}

// What a Go worker stores is what Python stores for the same values.
func testPickleWritesPython(t *testing.T, e *testEnv) {
	r := e.results(t, map[string]any{"serializer": "pickle"})
	eachFixture(t, e, func(name string, f pickleFixture, key, progressOf string) {
		if progressOf != "" {
			require.NoError(t, r.SetProgress(ctxT(t), progressOf, f.JSON))
		} else {
			require.NoError(t, r.SetResults(ctxT(t), []sdk.StoredResult{{TaskID: key, Body: f.JSON}}))
		}
		raw, err := e.rdb.Get(ctxT(t), key).Bytes()
		require.NoError(t, err)
		require.Equal(t, f.stored(t), raw, "%s: bytes as taskiq-redis's PickleSerializer stores them", name)
	})
}

func testPickleReadsJSON(t *testing.T, e *testEnv) {
	r := e.results(t, map[string]any{"serializer": "pickle"})
	id := taskID(e)
	require.NoError(t, e.rdb.Set(ctxT(t), id, errorResult, 0).Err())
	got, err := r.GetResult(ctxT(t), id)
	require.NoError(t, err)
	require.Equal(t, errorResult, string(got))
}

func testPickleRefusesObjects(t *testing.T, e *testEnv) {
	r := e.results(t, map[string]any{"serializer": "pickle"})
	id := taskID(e)
	// cos\nsystem\n: a pickle naming os.system, which is never looked up.
	require.NoError(t, e.rdb.Set(ctxT(t), id, "\x80\x04cos\nsystem\n(S'true'\ntR.", 0).Err())
	_, err := r.GetResult(ctxT(t), id)
	require.ErrorIs(t, err, wire.ErrMalformed)
	require.ErrorContains(t, err, "GLOBAL is refused")
	_, err = r.WaitResult(ctxT(t), id)
	require.ErrorContains(t, err, "GLOBAL is refused", "the wait ends with the error")
}

func testJSONRefusesPickle(t *testing.T, e *testEnv) {
	r := e.results(t, nil)
	f := pickleFixtures(t)["int"]
	id := taskID(e)
	require.NoError(t, e.rdb.Set(ctxT(t), id, f.stored(t), 0).Err())
	require.NoError(t, e.rdb.Set(ctxT(t), id+"__progress", f.stored(t), 0).Err())
	for _, read := range []func() ([]byte, error){
		func() ([]byte, error) { return r.GetResult(ctxT(t), id) },
		func() ([]byte, error) { return r.WaitResult(ctxT(t), id) },
		func() ([]byte, error) { return r.GetProgress(ctxT(t), id) },
	} {
		_, err := read()
		require.ErrorIs(t, err, wire.ErrMalformed)
		require.ErrorContains(t, err, `set serializer = "pickle"`)
		require.ErrorContains(t, err, "JSONSerializer()")
	}
}

func TestResultSerializerConfig(t *testing.T) {
	t.Parallel()
	e := newMiniEnv(t)
	_, err := newResultBackend(ctxT(t), e.config(t, map[string]any{"serializer": "yaml"}))
	require.ErrorContains(t, err, `unknown serializer "yaml"`)
}
