package dashboard_test

import (
	"os"
	"testing"

	"github.com/taskiq-go/taskiq/internal/leaktest"
)

// TestMain checks that the tests leave no goroutine running.
func TestMain(m *testing.M) { os.Exit(leaktest.Code(m.Run())) }
