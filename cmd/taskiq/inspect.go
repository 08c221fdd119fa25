package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskiq-go/taskiq/core"
)

// The inspection and control commands: queues, tasks, task, dead, queue,
// workers and cancel. Each loads taskiq.hcl as a client, asks the broker's
// inspector, and prints a table that fits a terminal or, with --json, JSON.

func init() {
	subcommands = append(subcommands, newQueuesCmd, newTasksCmd, newTaskCmd, newDeadCmd,
		newQueueCmd, newWorkersCmd, newCancelCmd)
}

// inspectFlags are the flags every inspection command has.
type inspectFlags struct {
	cfg    string
	broker string
	json   bool
}

func (f *inspectFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVarP(&f.cfg, "config", "c", "taskiq.hcl", "path to taskiq.hcl")
	fl.StringVar(&f.broker, "broker", "", "broker block to inspect (default: the default broker)")
	fl.BoolVar(&f.json, "json", false, "print JSON instead of a table")
}

// withInspector runs fn with the App and the broker's inspector.
func (f *inspectFlags) withInspector(cmd *cobra.Command, g *globals, fn func(ctx context.Context, app *core.App, in core.Inspector) error) error {
	ctx, stop := signalContext(cmd.Context())
	defer stop()
	app, closeApp, err := loadClient(ctx, f.cfg, g)
	if err != nil {
		return err
	}
	defer closeApp()
	in, err := app.Inspector(f.broker)
	if err != nil {
		return err
	}
	return fn(ctx, app, in)
}

// listing is the RunE of a command that prints what fetch returns: one
// table row per item, or JSON.
func listing[T any](f *inspectFlags, g *globals, fetch func(core.Inspector, context.Context) ([]T, error), header string, row func(T) []string) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		return f.withInspector(cmd, g, func(ctx context.Context, _ *core.App, in core.Inspector) error {
			items, err := fetch(in, ctx)
			if err != nil {
				return err
			}
			if f.json {
				return printValue(g.stdout, items)
			}
			rows := make([][]string, len(items))
			for i, it := range items {
				rows[i] = row(it)
			}
			table(g.stdout, header, rows)
			return nil
		})
	}
}

func printValue(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func table(w io.Writer, header string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush()
}

// shortDur prints a duration the way a table column wants it.
func shortDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// clip shortens s to n runes for a table cell.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func newQueuesCmd(g *globals) *cobra.Command {
	var f inspectFlags
	cmd := &cobra.Command{
		Use:   "queues",
		Short: "List the broker's queues with their counts",
		Long: `List the queues of the broker with how many messages are queued, delayed,
running and dead, the age of the oldest queued message, the consumers and
whether the queue is paused. Counts are cached by the broker plugin for a
short interval (taskiq-redis: inspect_refresh), never counted by a scan.`,
		Args: cobra.NoArgs,
		RunE: listing(&f, g, core.Inspector.Queues, "QUEUE\tQUEUED\tDELAYED\tRUNNING\tDEAD\tOLDEST\tCONSUMERS\tSTATE",
			func(q core.QueueStats) []string {
				paused := ""
				if q.Paused {
					paused = "paused"
				}
				return []string{q.Name, fmt.Sprint(q.Queued), fmt.Sprint(q.Delayed), fmt.Sprint(q.Running),
					fmt.Sprint(q.Dead), shortDur(q.OldestAge), fmt.Sprint(q.Consumers), paused}
			}),
	}
	f.add(cmd)
	return cmd
}

// filterFlags select messages.
type filterFlags struct {
	queue  string
	state  string
	task   string
	id     string
	labels []string
	text   string
}

func (ff *filterFlags) add(cmd *cobra.Command, defState string) {
	fl := cmd.Flags()
	fl.StringVar(&ff.queue, "queue", "", "queue (default: the broker's default queue)")
	fl.StringVar(&ff.state, "state", defState, "queued, delayed, running or dead")
	fl.StringVar(&ff.task, "task", "", "only messages of this task name")
	fl.StringVar(&ff.id, "id", "", "only the message of this task id")
	fl.StringArrayVar(&ff.labels, "label", nil, "only messages with this label, KEY=VALUE (repeatable)")
	fl.StringVar(&ff.text, "filter", "", "only messages whose args, kwargs or dead-letter reason contain this text")
}

func (ff *filterFlags) filter() (core.MessageFilter, error) {
	f := core.MessageFilter{TaskName: ff.task, TaskID: ff.id, Text: ff.text}
	for _, l := range ff.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return f, fmt.Errorf("--label %q: write it as KEY=VALUE", l)
		}
		if f.Labels == nil {
			f.Labels = map[string]string{}
		}
		f.Labels[k] = v
	}
	return f, nil
}

func (ff *filterFlags) messageState() (core.MessageState, error) {
	s := core.MessageState(ff.state)
	if !s.Valid() {
		return s, fmt.Errorf("--state %q: use queued, delayed, running or dead", ff.state)
	}
	return s, nil
}

func newTasksCmd(g *globals) *cobra.Command {
	var (
		f      inspectFlags
		ff     filterFlags
		limit  int
		cursor string
	)
	cmd := &cobra.Command{
		Use:   "tasks",
		Short: "List the messages of a queue in one state, filtered on the broker",
		Long: `List one page of the messages of a queue in one state (queued, delayed,
running or dead). Filters run in the broker plugin: --task, --id, --label
KEY=VALUE and --filter TEXT (a substring of the args, kwargs or dead-letter
reason). A page that is not the last prints the cursor of the next one;
pass it back with --cursor.`,
		Example: `  taskiq tasks --state dead --task billing.charge --filter timeout
  taskiq tasks --queue low --label tenant=acme --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			state, err := ff.messageState()
			if err != nil {
				return err
			}
			filter, err := ff.filter()
			if err != nil {
				return err
			}
			return f.withInspector(cmd, g, func(ctx context.Context, _ *core.App, in core.Inspector) error {
				page, err := in.Messages(ctx, core.MessageQuery{Queue: ff.queue, State: state, Filter: filter, Cursor: cursor, Limit: limit})
				if err != nil {
					return err
				}
				if f.json {
					return printValue(g.stdout, jsonPage(page))
				}
				var rows [][]string
				for _, m := range page.Messages {
					when, extra := stamp(m.EnqueuedAt), ""
					switch m.State {
					case core.StateDelayed:
						when = stamp(m.DueAt)
					case core.StateRunning:
						extra = m.LeaseHolder
					case core.StateDead:
						when, extra = stamp(m.FailedAt), clip(m.Reason, 50)
					}
					rows = append(rows, []string{clip(m.TaskID, 34), clip(m.TaskName, 30), fmt.Sprint(m.Attempt), when, extra})
				}
				table(g.stdout, "TASK ID\tTASK\tATTEMPT\tWHEN\tINFO", rows)
				if page.Next != "" {
					fmt.Fprintf(g.stderr, "more: --cursor %s\n", page.Next)
				}
				return nil
			})
		},
	}
	f.add(cmd)
	ff.add(cmd, string(core.StateQueued))
	cmd.Flags().IntVar(&limit, "limit", 50, "page size (at most 1000)")
	cmd.Flags().StringVar(&cursor, "cursor", "", "continue from the cursor a previous page printed")
	for _, kind := range []core.ActionKind{core.ActionMove, core.ActionDelete} {
		cmd.AddCommand(newActCmd(g, kind, core.StateQueued))
	}
	return cmd
}

// jsonMessage is a message as --json prints it: the body as JSON when it
// parses, else as a string.
type jsonMessage struct {
	core.MessageInfo
	Body json.RawMessage `json:"Body"`
}

func toJSONMessage(m core.MessageInfo) jsonMessage {
	body := json.RawMessage(m.Body)
	if !json.Valid(body) {
		body, _ = json.Marshal(string(m.Body))
	}
	return jsonMessage{MessageInfo: m, Body: body}
}

func jsonPage(p core.MessagePage) any {
	ms := make([]jsonMessage, len(p.Messages))
	for i, m := range p.Messages {
		ms[i] = toJSONMessage(m)
	}
	return struct {
		Messages []jsonMessage
		Next     string
	}{ms, p.Next}
}

func newTaskCmd(g *globals) *cobra.Command {
	var f inspectFlags
	cmd := &cobra.Command{
		Use:   "task TASK_ID",
		Short: "Show one task: its message, where it is, its result or error and progress",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withInspector(cmd, g, func(ctx context.Context, app *core.App, _ core.Inspector) error {
				d, err := app.TaskDetail(ctx, f.broker, core.TaskRef{TaskID: args[0]})
				if err != nil {
					return err
				}
				if f.json {
					out := struct {
						TaskID   string
						Message  *jsonMessage
						Result   *core.TaskResult
						Progress *core.Progress
					}{TaskID: d.TaskID, Result: d.Result, Progress: d.Progress}
					if d.Message != nil {
						m := toJSONMessage(*d.Message)
						out.Message = &m
					}
					return printValue(g.stdout, out)
				}
				w := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintf(w, "task id\t%s\n", d.TaskID)
				if m := d.Message; m != nil {
					fmt.Fprintf(w, "task\t%s\nqueue\t%s\nstate\t%s\nattempt\t%d\nenqueued\t%s\n", m.TaskName, m.Queue, m.State, m.Attempt, stamp(m.EnqueuedAt))
					if m.LeaseHolder != "" {
						fmt.Fprintf(w, "lease holder\t%s (until %s)\n", m.LeaseHolder, stamp(m.LeaseDeadline))
					}
					if m.State == core.StateDead {
						fmt.Fprintf(w, "dead since\t%s\nreason\t%s\n", stamp(m.FailedAt), m.Reason)
					}
					if d.Decoded != nil {
						args, _ := json.Marshal(d.Decoded.Args)
						kwargs, _ := json.Marshal(d.Decoded.Kwargs)
						labels, _ := json.Marshal(d.Decoded.Labels)
						fmt.Fprintf(w, "args\t%s\nkwargs\t%s\nlabels\t%s\n", args, kwargs, labels)
					}
				} else {
					fmt.Fprintf(w, "state\tfinished (the broker holds no message of it)\n")
				}
				if r := d.Result; r != nil {
					if r.IsErr && r.Error != nil {
						fmt.Fprintf(w, "error\t%s\n", r.Error.Error())
						for c := r.Error.ExcCause; c != nil; c = c.ExcCause {
							fmt.Fprintf(w, "caused by\t%s\n", c.Error())
						}
					} else {
						fmt.Fprintf(w, "result\t%s\n", string(r.ReturnValue))
					}
					fmt.Fprintf(w, "took\t%s\n", shortDur(time.Duration(r.ExecutionTime*float64(time.Second))))
				}
				if p := d.Progress; p != nil {
					meta, _ := json.Marshal(p.Meta)
					fmt.Fprintf(w, "progress\t%s %s\n", p.State, meta)
				}
				return w.Flush()
			})
		},
	}
	f.add(cmd)
	return cmd
}

func newDeadCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dead",
		Short: "Re-kick, delete or move dead letters, by task id or by filter",
	}
	for _, kind := range []core.ActionKind{core.ActionRequeue, core.ActionDelete, core.ActionMove} {
		cmd.AddCommand(newActCmd(g, kind, core.StateDead))
	}
	return cmd
}

// newActCmd is a bulk action command: on the messages in state (the
// default of --state; fixed for dead letters) named by task id, or on every
// message matching the filter flags, or on all of them with --all.
func newActCmd(g *globals, kind core.ActionKind, state core.MessageState) *cobra.Command {
	var (
		f      inspectFlags
		ff     filterFlags
		dryRun bool
		all    bool
		to     string
	)
	dead := state == core.StateDead
	noun := "messages"
	if dead {
		noun = "dead letters"
	}
	verb := map[core.ActionKind]string{core.ActionRequeue: "requeued", core.ActionDelete: "deleted", core.ActionMove: "moved"}[kind]
	short := map[core.ActionKind]string{
		core.ActionRequeue: "Put " + noun + " back in their queue",
		core.ActionDelete:  "Delete " + noun + " for good",
		core.ActionMove:    "Move " + noun + " to another queue (--to)",
	}[kind]
	example := "  taskiq dead " + string(kind) + " --task billing.charge --filter timeout --dry-run\n  taskiq dead " + string(kind) + " 5f1c0e7d9a2b4c6e8f0a1b2c3d4e5f60"
	if kind == core.ActionMove {
		example = "  taskiq dead move --to billing-retry --task billing.charge --dry-run"
	}
	if !dead {
		example = "  taskiq tasks move --queue default --to low --task reports.nightly --dry-run\n  taskiq tasks move --state delayed --to low 5f1c0e7d9a2b4c6e8f0a1b2c3d4e5f60"
	}
	sub := &cobra.Command{
		Use:   string(kind) + " [TASK_ID...]",
		Short: short,
		Long: `Act on the ` + noun + ` of a queue named by task id, or on every one
matching --task, --label and --filter (the whole filtered set, not a page),
or on all of them with --all. --dry-run prints how many would be ` + verb + `.`,
		Example: example,
		RunE: func(cmd *cobra.Command, args []string) error {
			filter, err := ff.filter()
			if err != nil {
				return err
			}
			st, err := ff.messageState()
			if err != nil {
				return err
			}
			if len(args) == 0 && filter.IsZero() && !all {
				return errors.New("name the " + noun + ": task ids, a filter (--task, --label, --filter), or --all")
			}
			if kind == core.ActionMove && to == "" {
				return errors.New("move needs --to QUEUE")
			}
			return f.withInspector(cmd, g, func(ctx context.Context, _ *core.App, in core.Inspector) error {
				a := core.Action{Kind: kind, Queue: ff.queue, State: st, Filter: filter, DryRun: dryRun, Target: to}
				if len(args) > 0 {
					refs, err := messageRefs(ctx, in, ff.queue, st, args)
					if err != nil {
						return err
					}
					a.Refs = refs
				}
				res, err := in.Act(ctx, a)
				if err != nil {
					return err
				}
				if f.json {
					return printValue(g.stdout, res)
				}
				if dryRun {
					fmt.Fprintf(g.stdout, "%d %s would be %s (dry run)\n", res.Matched, counted(res.Matched, noun), verb)
				} else {
					fmt.Fprintf(g.stdout, "%d %s %s\n", res.Done, counted(res.Done, noun), verb)
				}
				return nil
			})
		},
	}
	f.add(sub)
	ff.add(sub, string(state))
	if dead {
		_ = sub.Flags().MarkHidden("state")
	}
	sub.Flags().BoolVar(&dryRun, "dry-run", false, "only count the "+noun+" it would act on")
	sub.Flags().BoolVar(&all, "all", false, "act on every one of the queue's "+noun)
	switch kind {
	case core.ActionRequeue:
		sub.Flags().StringVar(&to, "to", "", "put them in this queue instead of their own")
	case core.ActionMove:
		sub.Flags().StringVar(&to, "to", "", "the queue to move them to (required)")
	}
	return sub
}

// messageRefs finds the refs of the messages in state of the given task ids.
func messageRefs(ctx context.Context, in core.Inspector, queue string, state core.MessageState, ids []string) ([]string, error) {
	var refs []string
	for _, id := range ids {
		m, err := in.Task(ctx, core.TaskRef{TaskID: id, Queue: queue, State: state})
		if err != nil {
			what := string(state) + " message"
			if state == core.StateDead {
				what = "dead letter"
			}
			return nil, fmt.Errorf("%s of task %s: %w", what, id, err)
		}
		refs = append(refs, m.Ref)
	}
	return refs, nil
}

func newQueueCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "queue", Short: "Pause or resume a queue"}
	for _, pause := range []bool{true, false} {
		var f inspectFlags
		name := map[bool]string{true: "pause", false: "resume"}[pause]
		sub := &cobra.Command{
			Use:   name + " QUEUE",
			Short: map[bool]string{true: "Stop workers fetching from a queue (kicks still enqueue)", false: "Let workers fetch from a paused queue again"}[pause],
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return f.withInspector(cmd, g, func(ctx context.Context, _ *core.App, in core.Inspector) error {
					if err := in.SetPaused(ctx, args[0], pause); err != nil {
						return err
					}
					if f.json {
						return printValue(g.stdout, map[string]any{"queue": args[0], "paused": pause})
					}
					fmt.Fprintf(g.stdout, "queue %s %sd\n", args[0], name)
					return nil
				})
			},
		}
		f.add(sub)
		cmd.AddCommand(sub)
	}
	return cmd
}

func newWorkersCmd(g *globals) *cobra.Command {
	var f inspectFlags
	cmd := &cobra.Command{
		Use:   "workers",
		Short: "List the live workers, from their heartbeats",
		Args:  cobra.NoArgs,
		RunE: listing(&f, g, core.Inspector.Workers, "HOST\tPID\tQUEUES\tRUNNING\tSTARTED\tLAST SEEN",
			func(w core.WorkerInfo) []string {
				return []string{clip(w.Host, 24), fmt.Sprint(w.PID), clip(strings.Join(w.Queues, ","), 30),
					fmt.Sprint(w.Running), stamp(w.Started), shortDur(time.Since(w.LastSeen)) + " ago"}
			}),
	}
	f.add(cmd)
	return cmd
}

func newCancelCmd(g *globals) *cobra.Command {
	var f inspectFlags
	cmd := &cobra.Command{
		Use:   "cancel TASK_ID",
		Short: "Cancel a task: a queued one never starts, a running one is stopped",
		Long: `Cancel a task. A queued or delayed task never starts: the broker keeps a
tombstone (taskiq-redis: cancel_ttl) that a worker checks when it takes the
message, so the cancel survives worker restarts. A running task has its
context cancelled on the worker that runs it. Either way its result is a
TaskCancelledError. A task that already finished is left alone, and the
command says so (exit status 1).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			app, closeApp, err := loadClient(ctx, f.cfg, g)
			if err != nil {
				return err
			}
			defer closeApp()
			if err := app.Cancel(ctx, args[0]); err != nil {
				if errors.Is(err, core.ErrTaskFinished) {
					fmt.Fprintf(g.stderr, "task %s already finished; nothing was cancelled\n", args[0])
					return errQuiet
				}
				return err
			}
			if f.json {
				return printValue(g.stdout, map[string]any{"task_id": args[0], "cancelled": true})
			}
			fmt.Fprintf(g.stdout, "task %s cancelled\n", args[0])
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

// counted is noun (a plural) in the singular when n is 1.
func counted(n int, noun string) string {
	if n == 1 {
		return strings.TrimSuffix(noun, "s")
	}
	return noun
}
