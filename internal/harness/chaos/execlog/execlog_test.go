package execlog_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/internal/harness/chaos/execlog"
)

func TestFormatParseRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Unix(1700000000, 123456789)
	in := []execlog.Line{
		{Kind: execlog.Start, TaskID: "kill-worker-000001", WorkerPID: 10, ModulePID: 11, At: at},
		{Kind: execlog.End, TaskID: "kill-worker-000001", WorkerPID: 10, ModulePID: 11, At: at.Add(time.Millisecond), Outcome: "ok"},
	}
	var buf bytes.Buffer
	for _, l := range in {
		buf.Write(execlog.Format(l))
	}
	out, err := execlog.Parse(&buf)
	require.NoError(t, err)
	require.Len(t, out, 2)
	for i := range in {
		require.True(t, in[i].At.Equal(out[i].At))
		out[i].At = in[i].At
	}
	require.Equal(t, in, out)
}

func TestParseRejectsMalformedLines(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		"X id 1 2 3\n",
		"S id one 2 3\n",
		"S id 1 2\n",
		"E id 1 2 3\n", // end without outcome
	} {
		_, err := execlog.Parse(bytes.NewBufferString("S ok 1 2 3\n" + bad))
		require.ErrorContains(t, err, "line 2", "input %q", bad)
	}
}

// Concurrent writers, as the module's tasks are, never tear a line.
func TestWriterConcurrentAppends(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), execlog.FileName)
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wl, err := execlog.Open(path)
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				if err := wl.Start(id); err != nil {
					t.Error(err)
				}
				if err := wl.End(id, "ok"); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	lines, err := execlog.Parse(f)
	require.NoError(t, err)
	require.Len(t, lines, 2*writers*each)
	require.Equal(t, os.Getpid(), lines[0].ModulePID)
	require.Equal(t, os.Getppid(), lines[0].WorkerPID)
}

func TestOpenExplainsAnUnwritableDirectory(t *testing.T) {
	t.Parallel()
	_, err := execlog.Open(filepath.Join(t.TempDir(), "missing", execlog.FileName))
	require.ErrorContains(t, err, "TMPDIR")
}
