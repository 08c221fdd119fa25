// Command taskiq-retry-middleware is the retry middleware plugin binary. The
// worker host starts it; it is not meant to be run by hand. Put it in
// plugin_dir and reference it from a middleware block of taskiq.hcl.
package main

import (
	"github.com/taskiq-go/taskiq/plugin/sdk"
	retry "github.com/taskiq-go/taskiq/plugins/retry-middleware"
)

func main() {
	sdk.Serve(retry.Plugin())
}
