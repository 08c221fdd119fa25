package retry_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
	retry "github.com/taskiq-go/taskiq/plugins/retry-middleware"
)

// errRateLimited stands for an API answering 429.
var errRateLimited = errors.New("rate limited")

// charge is the body of a task. The retry middleware in the worker reads the
// markers from the error, also when the task runs in another process.
func charge(amount int) error {
	switch {
	case amount <= 0:
		// Another attempt cannot fix bad input: fail now.
		return retry.NoRetry(fmt.Errorf("amount must be positive, got %d", amount))
	case amount > 1000:
		// The API said when to come back: wait that long, not the backoff.
		return retry.RetryAfter(30*time.Second, errRateLimited)
	}
	return nil
}

func Example() {
	for _, amount := range []int{-5, 5000} {
		err := charge(amount)
		w := wire.FromError(err) // what the result backend stores
		fmt.Printf("%s %v (is rate limited: %t)\n", w.ExcType, w.ExcMessage, errors.Is(err, errRateLimited))
	}
	// Output:
	// NoRetry [amount must be positive, got -5] (is rate limited: false)
	// RetryAfter [rate limited 30] (is rate limited: true)
}
