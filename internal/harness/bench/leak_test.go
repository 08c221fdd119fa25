package bench

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if they leave goroutines behind. Run
// with envEchoSocket set, the test binary is the echoing process of
// BenchmarkProcessWakeup instead.
func TestMain(m *testing.M) {
	if path := os.Getenv(envEchoSocket); path != "" {
		os.Exit(echo(path))
	}
	goleak.VerifyTestMain(m)
}
