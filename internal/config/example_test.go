package config_test

import (
	"fmt"

	"github.com/taskiq-go/taskiq/internal/config"
)

// A typo in a worker attribute is reported with its position and HCL's
// suggestion.
func ExampleParse() {
	src := []byte(`broker "default" {
  plugin = "taskiq-inmemory"
}

worker {
  max_async_task = 50
}
`)
	_, diags := config.Parse(src, "taskiq.hcl")
	fmt.Println(config.FormatDiagnostics(diags))
	// Output:
	// taskiq.hcl:6:3: Unsupported argument; An argument named "max_async_task" is not expected here. Did you mean "max_async_tasks"?
}
