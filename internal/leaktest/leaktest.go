// Package leaktest checks with goleak that a package's tests leave no
// goroutine running.
package leaktest

import (
	"fmt"
	"os"

	"go.uber.org/goleak"
)

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
