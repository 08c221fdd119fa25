package taskiqrabbitmq

import (
	"os"
	"testing"

	"github.com/taskiq-go/taskiq/internal/leaktest"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

func TestMain(m *testing.M) {
	sdktest.RunPluginIfRequested(Plugin())
	os.Exit(leaktest.Code(m.Run()))
}
