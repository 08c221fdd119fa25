package taskiqredis

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

func TestMain(m *testing.M) {
	sdktest.RunPluginIfRequested(Plugin())
	// go-redis logs every failed dial itself; the outage tests cause many,
	// and the plugin reports them through its own logger anyway.
	redis.SetLogger(quietLogger{})
	os.Exit(m.Run())
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
