// Command taskiq-bench-module is the task module of `taskiq bench --module`:
// it serves the benchmark task (bench.RegisterModuleTask), so that the
// benchmark runs the task in a module process under the worker host, as
// `taskiq worker ./bin/<module>` does.
//
//	go build -o bin/taskiq-bench-module ./internal/harness/bench/module
//	taskiq bench --config taskiq.hcl --module ./bin/taskiq-bench-module
package main

import (
	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/internal/harness/bench"
)

var app = core.NewModule("taskiq-bench-module")

func main() {
	if err := bench.RegisterModuleTask(app); err != nil {
		panic(err)
	}
	core.ServeModule(app, "0.1.0")
}
