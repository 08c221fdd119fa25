package sdk_test

import (
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

// lineCatcher is a log output that hands over the first line containing
// want.
type lineCatcher struct {
	want string
	once sync.Once
	got  chan string
}

func (c *lineCatcher) Write(p []byte) (int, error) {
	if line := string(p); strings.Contains(line, c.want) {
		c.once.Do(func() { c.got <- strings.TrimRight(line, "\n") })
	}
	return len(p), nil
}

var timestampRE = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}`)

// A plugin's log line reaches the host's log with its numbers as integers
// and a single timestamp: the fake broker logs max_message_size (16 MiB)
// when it is configured, which used to print as
// max_message_size=1.6777216e+07 ... timestamp=2026-...
func TestPluginLogLinesReadWell(t *testing.T) {
	t.Parallel()
	out := &lineCatcher{want: "fake broker configured", got: make(chan string, 1)}
	logger := hclog.New(&hclog.LoggerOptions{Name: "host", Output: out, Level: hclog.Info})
	sdktest.Launch(t, sdk.KindBroker, `{"queue": "q"}`, sdktest.WithLogger(logger),
		sdktest.WithEnv(sdk.EnvLogLevel+"=info"))

	var line string
	select {
	case line = <-out.got:
	case <-testCtx(t).Done():
		t.Fatal("the plugin's log line never arrived")
	}
	require.Contains(t, line, "max_message_size=16777216")
	require.Contains(t, line, "ratio=0.5")
	require.Len(t, timestampRE.FindAllString(line, -1), 1, line)
	require.NotContains(t, line, "timestamp=")
}
