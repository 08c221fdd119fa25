// Command taskiq is the taskiq-go command line: it validates taskiq.hcl and
// inspects plugin binaries.
package main

import (
	"os"

	"github.com/taskiq-go/taskiq/internal/gctune"
)

func main() {
	gctune.Apply()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
