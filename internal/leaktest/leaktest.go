// Package leaktest checks with goleak that a package's tests leave no
// goroutine running, and names once the goroutines known to outlive them.
package leaktest

import (
	"fmt"
	"os"

	"go.uber.org/goleak"
)

// SDKWatchRunner ignores the idle runner of the send coalescer of the
// plugin SDK's result-watch stream (plugin/sdk grpc_watch.go): the stream
// does not close it when it ends, and the runner exits 5s (the coalescer's
// idle time) later. Tests that load plugins need it; it ignores every
// Coalescer runner, so core's TestAppCloseEndsItsGoroutines checks the
// App's own coalescers without it.
var SDKWatchRunner = goleak.IgnoreTopFunction("github.com/taskiq-go/taskiq/internal/coalesce.(*Coalescer[...]).run")

// Code is goleak.VerifyTestMain for a TestMain that cleans up after its
// tests: it returns code, or 1 when code is 0 and goroutines other than
// those opts ignore are still running.
func Code(code int, opts ...goleak.Option) int {
	if code != 0 {
		return code
	}
	if err := goleak.Find(opts...); err != nil {
		fmt.Fprintln(os.Stderr, "goleak: goroutines left running after the tests:", err)
		return 1
	}
	return 0
}
