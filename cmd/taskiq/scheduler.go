package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskiq-go/taskiq/core"
)

func init() { subcommands = append(subcommands, newSchedulerCmd, newScheduleCmd) }

func newSchedulerCmd(g *globals) *cobra.Command {
	var (
		cfg    string
		reload time.Duration
		holder string
	)
	cmd := &cobra.Command{
		Use:   "scheduler [MODULE...]",
		Short: "Fire the schedules of taskiq.hcl, of task labels and of schedule sources",
		Long: `Run the scheduler: it kicks each schedule's task at every slot of its cron,
interval or one-shot time, from the schedule blocks of taskiq.hcl, the
"schedule" labels of the tasks in the named task modules, and the
schedule_source plugins. Run as many replicas as you like: with a broker that
deduplicates kicks (taskiq-redis, taskiq-inmemory) each slot is fired once;
see docs/scheduler.md. SIGINT or SIGTERM stops it.`,
		Example: `  taskiq scheduler --config taskiq.hcl
  taskiq scheduler --config taskiq.hcl ./bin/billing-tasks`,
		RunE: func(cmd *cobra.Command, modules []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			app, closeApp, err := loadClient(ctx, cfg, g)
			if err != nil {
				return err
			}
			defer closeApp()
			if len(modules) > 0 {
				if err := core.LoadModules(ctx, app, modules); err != nil {
					return err
				}
			}
			list, err := app.Schedules(ctx)
			if err != nil {
				g.logger().Warn("some schedules could not be read; the scheduler retries", "error", err)
			}
			fmt.Fprintf(g.stderr, "taskiq scheduler: %d schedules; stop with SIGINT or SIGTERM\n", len(list))
			stats := &core.SchedulerStats{}
			err = app.RunScheduler(ctx, core.SchedulerOptions{Reload: reload, Holder: holder, Stats: stats})
			s := stats.Snapshot()
			fmt.Fprintf(g.stderr, "taskiq scheduler: stopped: %d fires, %d missed, %d skipped, %d errors, lag last %s max %s\n",
				s.Fires, s.Missed, s.Skipped, s.Errors, s.LagLast.Round(time.Millisecond), s.LagMax.Round(time.Millisecond))
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&cfg, "config", "c", "taskiq.hcl", "path to taskiq.hcl")
	fl.DurationVar(&reload, "reload", 10*time.Second, "how often schedules are read again from their sources")
	fl.StringVar(&holder, "holder", "", "name of this replica in the leader lease (default: host name and pid)")
	return cmd
}

func newScheduleCmd(g *globals) *cobra.Command {
	var cfg string
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "List schedules and manage those of schedule sources",
	}
	cmd.PersistentFlags().StringVarP(&cfg, "config", "c", "taskiq.hcl", "path to taskiq.hcl")
	withApp := func(cmd *cobra.Command, fn func(ctx context.Context, app *core.App) error) error {
		ctx, stop := signalContext(cmd.Context())
		defer stop()
		app, closeApp, err := loadClient(ctx, cfg, g)
		if err != nil {
			return err
		}
		defer closeApp()
		return fn(ctx, app)
	}

	var next int
	var asJSON bool
	list := &cobra.Command{
		Use:   "list [MODULE...]",
		Short: "List every schedule with its next fire times (with the task modules' label schedules)",
		RunE: func(cmd *cobra.Command, modules []string) error {
			return withApp(cmd, func(ctx context.Context, app *core.App) error {
				if len(modules) > 0 {
					if err := core.LoadModules(ctx, app, modules); err != nil {
						return err
					}
				}
				list, err := app.Schedules(ctx)
				if err != nil && len(list) == 0 {
					return err
				}
				if err != nil {
					fmt.Fprintln(g.stderr, "warning:", err)
				}
				return printSchedules(g, list, next, asJSON)
			})
		},
	}
	list.Flags().IntVarP(&next, "next", "n", 3, "how many next fire times to show")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var (
		source, cron, interval, at, zone, args, kwargs, catchup, overlap, broker string
		labels                                                                   []string
		paused                                                                   bool
	)
	add := &cobra.Command{
		Use:   "add ID TASK_NAME",
		Short: "Add (or replace) a schedule in a schedule source",
		Example: `  taskiq schedule add nightly reports:nightly --cron '30 2 * * *' --timezone Europe/Berlin
  taskiq schedule add ping app:ping --interval 30s --args '[1]'
  taskiq schedule add remind app:remind --at 2026-12-24T18:00:00+01:00 --kwargs '{"who":"ann"}'`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, a []string) error {
			s := core.Schedule{ID: a[0], TaskName: a[1], Cron: cron, Timezone: zone, Catchup: catchup,
				Overlap: overlap, Paused: paused, Broker: broker}
			if interval != "" {
				d, err := time.ParseDuration(interval)
				if err != nil {
					return fmt.Errorf("--interval: %v", err)
				}
				s.Interval = d
			}
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return fmt.Errorf("--at must be an RFC 3339 time such as 2026-12-24T18:00:00+01:00: %v", err)
				}
				s.Time = t.UTC()
			}
			if args != "" {
				if err := json.Unmarshal([]byte(args), &s.Args); err != nil {
					return fmt.Errorf("--args must be a JSON array such as '[1, \"two\"]': %v", err)
				}
			}
			if kwargs != "" {
				if err := json.Unmarshal([]byte(kwargs), &s.Kwargs); err != nil {
					return fmt.Errorf("--kwargs must be a JSON object such as '{\"name\":\"Ann\"}': %v", err)
				}
			}
			for _, l := range labels {
				key, val, ok := strings.Cut(l, "=")
				if !ok || key == "" {
					return fmt.Errorf("--label %q: write it as key=value", l)
				}
				var v any
				if err := json.Unmarshal(jsonOrString(val), &v); err != nil {
					return fmt.Errorf("--label %q: %v", l, err)
				}
				if s.Labels == nil {
					s.Labels = map[string]any{}
				}
				s.Labels[key] = v
			}
			return withApp(cmd, func(ctx context.Context, app *core.App) error {
				if err := app.AddSchedule(ctx, source, s); err != nil {
					return err
				}
				fmt.Fprintln(g.stdout, "added", s.ID)
				return nil
			})
		},
	}
	fl := add.Flags()
	fl.StringVar(&source, "source", "", "schedule_source block to add to (default: the only writable one)")
	fl.StringVar(&cron, "cron", "", "cron expression: 5 fields, or 6 with seconds first")
	fl.StringVar(&interval, "interval", "", "fire every duration (\"30s\"), anchored to the Unix epoch")
	fl.StringVar(&at, "at", "", "fire once at this RFC 3339 time")
	fl.StringVar(&zone, "timezone", "", "IANA time zone of the cron fields (default UTC)")
	fl.StringVar(&args, "args", "", "positional arguments as a JSON array")
	fl.StringVar(&kwargs, "kwargs", "", "keyword arguments as a JSON object")
	fl.StringArrayVar(&labels, "label", nil, "label key=value; repeatable")
	fl.StringVar(&catchup, "catchup", "", "missed slots: skip, latest (default) or all")
	fl.StringVar(&overlap, "overlap", "", "allow (default) or skip: no fire while the previous one has no result")
	fl.StringVar(&broker, "broker", "", "broker to kick through (default: client.default_broker)")
	fl.BoolVar(&paused, "paused", false, "add it paused")

	byID := func(use, short, done string, fn func(ctx context.Context, app *core.App, id string) (string, error)) *cobra.Command {
		return &cobra.Command{
			Use: use + " ID", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, a []string) error {
				return withApp(cmd, func(ctx context.Context, app *core.App) error {
					out, err := fn(ctx, app, a[0])
					if err != nil {
						return err
					}
					fmt.Fprintln(g.stdout, done, out)
					return nil
				})
			},
		}
	}
	cmd.AddCommand(list, add,
		byID("delete", "Delete a schedule from its source", "deleted", func(ctx context.Context, app *core.App, id string) (string, error) {
			return id, app.DeleteSchedule(ctx, id)
		}),
		byID("pause", "Pause a schedule: its slots pass without a fire and are not caught up", "paused", func(ctx context.Context, app *core.App, id string) (string, error) {
			return id, app.SetSchedulePaused(ctx, id, true)
		}),
		byID("resume", "Resume a paused schedule", "resumed", func(ctx context.Context, app *core.App, id string) (string, error) {
			return id, app.SetSchedulePaused(ctx, id, false)
		}),
		byID("trigger", "Fire a schedule now and print the task id", "sent", func(ctx context.Context, app *core.App, id string) (string, error) {
			return app.TriggerSchedule(ctx, id)
		}),
	)
	return cmd
}

func printSchedules(g *globals, list []core.ScheduleInfo, next int, asJSON bool) error {
	now := time.Now()
	type row struct {
		ID      string      `json:"id"`
		Origin  string      `json:"origin"`
		Task    string      `json:"task"`
		When    string      `json:"when"`
		Paused  bool        `json:"paused"`
		Next    []time.Time `json:"next"`
		Problem string      `json:"error,omitempty"`
	}
	rows := make([]row, 0, len(list))
	for _, s := range list {
		r := row{ID: s.ID, Origin: s.Origin, Task: s.TaskName, When: core.ScheduleTiming(s.Schedule), Paused: s.Paused}
		times, err := core.NextFireTimes(s.Schedule, now, next)
		if err != nil {
			r.Problem = err.Error()
		}
		r.Next = times
		rows = append(rows, r)
	}
	if asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tORIGIN\tTASK\tWHEN\tSTATE\tNEXT")
	for _, r := range rows {
		state := "active"
		if r.Paused {
			state = "paused"
		}
		nexts := make([]string, len(r.Next))
		for i, t := range r.Next {
			nexts[i] = t.UTC().Format(time.RFC3339)
		}
		if r.Problem != "" {
			nexts = []string{"invalid: " + r.Problem}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Origin, r.Task, r.When, state, strings.Join(nexts, " "))
	}
	return tw.Flush()
}
