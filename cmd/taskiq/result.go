package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskiq-go/taskiq/core"
)

func init() { subcommands = append(subcommands, newResultCmd) }

func newResultCmd(g *globals) *cobra.Command {
	var (
		cfg     string
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "result TASK_ID",
		Short: "Print a task's stored result as JSON",
		Long: `Print the result the result backend of taskiq.hcl stores for a task, as JSON
(is_err, return_value, error, execution_time, labels, log). Exits 1 when the
result is not ready (use --wait to wait for it) or no result backend is
configured.`,
		Example: `  taskiq result 3f6c0e0b6d3a4c5e9d8f2a1b0c9d8e7f --wait --timeout 30s`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			app, closeApp, err := loadClient(ctx, cfg, g)
			if err != nil {
				return err
			}
			defer closeApp()
			at := core.ResultOf[json.RawMessage](app, args[0])
			var res *core.Result[json.RawMessage]
			if wait {
				res, err = waitWithSpinner(ctx, at, timeout, g.stderr)
			} else {
				res, err = at.GetResult(ctx)
			}
			if err != nil {
				return resultError(args[0], err, false)
			}
			out, err := json.MarshalIndent(res.Raw, "", "  ")
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, string(out))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&cfg, "config", "c", "taskiq.hcl", "path to taskiq.hcl")
	fl.BoolVar(&wait, "wait", false, "wait until the result is stored")
	fl.DurationVar(&timeout, "timeout", time.Minute, "with --wait: how long to wait; 0 = forever")
	return cmd
}
