package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskiq-go/taskiq/core"
)

func init() { subcommands = append(subcommands, newKickCmd) }

func newKickCmd(g *globals) *cobra.Command {
	var (
		cfg     string
		kwargs  string
		labels  []string
		broker  string
		taskID  string
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "kick TASK_NAME [ARG...]",
		Short: "Send a task to the broker and print its id (or its result with --wait)",
		Long: `Send a task by name through the broker of taskiq.hcl (and its client
middlewares) and print the task id. With --wait, wait for the task's result and
print its return value as JSON instead; a failed task is an error.

Each ARG is a JSON value when it parses as one (42, true, [1,2], {"a":1},
"quoted text"), else a string: taskiq kick greet Ann sends ["Ann"].`,
		Example: `  taskiq kick example:add 1 2 --wait
  taskiq kick billing:charge --kwargs '{"customer":"c-42","cents":1200}' --label priority=5`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k := core.RawKick{TaskName: args[0], Broker: broker, TaskID: taskID}
			for _, a := range args[1:] {
				k.Args = append(k.Args, jsonOrString(a))
			}
			if kwargs != "" {
				if err := json.Unmarshal([]byte(kwargs), &k.Kwargs); err != nil {
					return fmt.Errorf("--kwargs must be a JSON object such as '{\"name\":\"Ann\"}': %v", err)
				}
			}
			var err error
			if k.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			app, closeApp, err := loadClient(ctx, cfg, g)
			if err != nil {
				return err
			}
			defer closeApp()
			at, err := app.KickByName(ctx, k)
			if err != nil {
				return err
			}
			if !wait {
				fmt.Fprintln(g.stdout, at.TaskID)
				return nil
			}
			res, err := waitWithSpinner(ctx, at, timeout, g.stderr)
			if err != nil {
				return resultError(at.TaskID, err, true)
			}
			if res.IsErr {
				return fmt.Errorf("task %s failed: %v", at.TaskID, res.Error)
			}
			return printJSON(g.stdout, res.ReturnValue)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&cfg, "config", "c", "taskiq.hcl", "path to taskiq.hcl")
	fl.StringVar(&kwargs, "kwargs", "", "keyword arguments as a JSON object")
	fl.StringArrayVar(&labels, "label", nil, "label key=value (value parsed as JSON when it is JSON: 7 is an int, 7.5 a float, else a string); repeatable")
	fl.StringVar(&broker, "broker", "", "broker to send through; default: client.default_broker")
	fl.StringVar(&taskID, "task-id", "", "task id; default: a new random one")
	fl.BoolVar(&wait, "wait", false, "wait for the result and print its return value")
	fl.DurationVar(&timeout, "timeout", time.Minute, "with --wait: how long to wait; 0 = forever")
	return cmd
}

// jsonOrString returns s itself when it is a JSON value, else s as a JSON
// string.
// parseLabels reads --label key=value flags. A value is JSON when it is
// JSON, else a string; an integer is an int (label type 2, as Python's int),
// any other number a float (type 4).
func parseLabels(flags []string) (map[string]any, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	labels := map[string]any{}
	for _, l := range flags {
		key, val, ok := strings.Cut(l, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("--label %q: write it as key=value", l)
		}
		dec := json.NewDecoder(bytes.NewReader(jsonOrString(val)))
		dec.UseNumber()
		var v any
		err := dec.Decode(&v)
		if err != nil {
			return nil, fmt.Errorf("--label %q: %v", l, err)
		}
		if n, ok := v.(json.Number); ok {
			if v, err = n.Int64(); err != nil {
				if v, err = n.Float64(); err != nil {
					return nil, fmt.Errorf("--label %q: %v", l, err)
				}
			}
		}
		labels[key] = v
	}
	return labels, nil
}

func jsonOrString(s string) json.RawMessage {
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s)
	return b
}

func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// loadClient loads taskiq.hcl for a client command: brokers and result
// backend start as plugin processes, stopped by the returned function.
func loadClient(ctx context.Context, path string, g *globals) (*core.App, func(), error) {
	app, err := core.Load(ctx, path, core.WithLogger(g.logger()))
	if err != nil {
		return nil, nil, err
	}
	return app, func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = app.Close(cctx)
	}, nil
}

// waitWithSpinner waits for a result, drawing a spinner on stderr when it is
// a terminal.
func waitWithSpinner(ctx context.Context, at *core.AsyncTask[json.RawMessage], timeout time.Duration, stderr io.Writer) (*core.Result[json.RawMessage], error) {
	if f, ok := stderr.(*os.File); ok && isCharDevice(f) {
		done := make(chan struct{})
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			frames := `|/-\`
			start := time.Now()
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for i := 0; ; i++ {
				fmt.Fprintf(f, "\r%c waiting for task %s (%s)", frames[i%len(frames)], at.TaskID, time.Since(start).Truncate(time.Second))
				select {
				case <-done:
					fmt.Fprint(f, "\r\033[K")
					return
				case <-t.C:
				}
			}
		}()
		defer func() { close(done); <-finished }()
	}
	return at.WaitResult(ctx, timeout)
}

func isCharDevice(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// resultError explains why no result could be read.
func resultError(taskID string, err error, kicked bool) error {
	sent := ""
	if kicked {
		sent = "task " + taskID + " was sent, but "
	}
	switch {
	case errors.Is(err, core.ErrNoResultBackend):
		return fmt.Errorf("%sits result cannot be read: %w", sent, err)
	case errors.Is(err, core.ErrTimeout):
		return fmt.Errorf("%sno result yet: %w; read it later with: taskiq result %s", sent, err, taskID)
	case errors.Is(err, core.ErrResultNotReady):
		return fmt.Errorf("the result of task %s is not ready: the task has not finished, or the id is wrong (use --wait to wait for it)", taskID)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%sstopped waiting for its result: %w", sent, err)
	}
	return fmt.Errorf("%sreading its result: %w", sent, err)
}

func printJSON(w io.Writer, raw json.RawMessage) error {
	if len(raw) == 0 {
		raw = json.RawMessage("null")
	}
	_, err := fmt.Fprintln(w, string(raw))
	return err
}
