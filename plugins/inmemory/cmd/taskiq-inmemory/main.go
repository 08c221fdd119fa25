// Command taskiq-inmemory is the in-memory broker and result backend plugin.
// The host starts it; it is not meant to be run by hand. Its queues and
// results live in this process and are lost when it exits.
package main

import (
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugins/inmemory"
)

func main() { sdk.Serve(inmemory.Plugin()) }
