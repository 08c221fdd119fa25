// Command taskiq is the taskiq-go command line: it validates taskiq.hcl and
// inspects plugin binaries.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
