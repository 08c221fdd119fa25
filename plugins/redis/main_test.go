package taskiqredis

import (
	"context"
	"os"
	"testing"

	"github.com/taskiq-go/taskiq/internal/leaktest"

	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

func TestMain(m *testing.M) {
	sdktest.RunPluginIfRequested(Plugin())
	// The SIGKILL end-to-end test re-executes this binary as a worker.
	runWorkerProcessIfRequested()
	// go-redis logs every failed dial itself; the outage tests cause many,
	// and the plugin reports them through its own logger anyway.
	redis.SetLogger(quietLogger{})
	code := m.Run()
	if pluginBinDir != "" {
		_ = os.RemoveAll(pluginBinDir)
	}
	os.Exit(leaktest.Code(code))
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
