package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// page is what every template gets.
type page struct {
	Title    string
	Nav      string
	Prefix   string
	CSRF     string
	ReadOnly bool
	Flash    string
	Error    string
	Data     any
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, name, title string, data any) {
	h.renderAs(w, r, name, name, title, data)
}

// renderAs renders template name with the navigation showing nav.
func (h *Handler) renderAs(w http.ResponseWriter, r *http.Request, name, nav, title string, data any) {
	p := page{Title: title, Nav: nav, Prefix: h.opts.Prefix, ReadOnly: h.opts.ReadOnly,
		Flash: r.URL.Query().Get("msg"), Data: data}
	if !h.opts.ReadOnly {
		p.CSRF = h.csrfToken(w, r)
	}
	var buf bytes.Buffer
	if err := h.tpl.ExecuteTemplate(&buf, name, p); err != nil {
		http.Error(w, "rendering the page failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = buf.WriteTo(w)
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	w.WriteHeader(status)
	h.render(w, r, "error", "Error", err.Error())
}

func (h *Handler) funcs() template.FuncMap {
	return template.FuncMap{
		"link": h.link,
		"age": func(d time.Duration) string {
			if d <= 0 {
				return "–"
			}
			return shortDuration(d)
		},
		"since": func(t time.Time) string {
			if t.IsZero() {
				return "–"
			}
			d := h.opts.Now().Sub(t)
			if d < time.Second {
				return "just now"
			}
			return shortDuration(d) + " ago"
		},
		"until": func(t time.Time) string {
			if t.IsZero() {
				return "–"
			}
			d := t.Sub(h.opts.Now())
			if d < 0 {
				return shortDuration(-d) + " ago"
			}
			return "in " + shortDuration(d)
		},
		"stamp": func(t time.Time) string {
			if t.IsZero() {
				return "–"
			}
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		},
		"clip": func(s string, n int) string {
			r := []rune(s)
			if len(r) <= n {
				return s
			}
			return string(r[:n-1]) + "…"
		},
		"json": func(v any) string {
			b, err := json.Marshal(v)
			if err != nil {
				return fmt.Sprint(v)
			}
			return string(b)
		},
		"pretty": func(b []byte) string {
			var out bytes.Buffer
			if json.Indent(&out, b, "", "  ") != nil {
				return string(b)
			}
			return out.String()
		},
		// qs builds a query string; its values are escaped here, so the
		// template takes it as a URL part as it is.
		"qs": func(kv ...string) template.URL {
			v := url.Values{}
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i+1] != "" {
					v.Set(kv[i], kv[i+1])
				}
			}
			return template.URL(v.Encode())
		},
		// args renders a message's args and kwargs compactly.
		"args": func(body []byte) string {
			m, err := wire.DecodeMessage(body)
			if err != nil {
				return string(body)
			}
			a, _ := json.Marshal(m.Args)
			out := string(a)
			if len(m.Kwargs) > 0 {
				k, _ := json.Marshal(m.Kwargs)
				out += " " + string(k)
			}
			return out
		},
		"states": func() []core.MessageState {
			return []core.MessageState{core.StateQueued, core.StateDelayed, core.StateRunning, core.StateDead}
		},
		"str": func(s core.MessageState) string { return string(s) },
	}
}

func shortDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// queueRow is one queue of the queues view.
type queueRow struct {
	core.QueueStats
	Spark template.HTML
	// Rate is the latest throughput (deliveries per second), or "depth"
	// when the broker has counted no delivery (the sparkline shows the
	// depth then).
	Rate string
}

// sample is one refresh of a queue's counts, for its sparkline.
type sample struct {
	at        time.Time
	delivered int64
	depth     int64
}

func (h *Handler) queues(w http.ResponseWriter, r *http.Request) {
	in, _ := h.app.Inspector(h.opts.Broker)
	qs, err := in.Queues(r.Context())
	if err != nil {
		h.fail(w, r, http.StatusBadGateway, err)
		return
	}
	rows := make([]queueRow, len(qs))
	h.histMu.Lock()
	for i, q := range qs {
		hist := h.history[q.Name]
		if n := len(hist); n == 0 || q.RefreshedAt.After(hist[n-1].at) {
			hist = append(hist, sample{at: q.RefreshedAt, delivered: q.Delivered, depth: q.Queued + q.Running + q.Delayed})
		}
		if len(hist) > historyLen+1 {
			hist = hist[len(hist)-historyLen-1:]
		}
		h.history[q.Name] = hist
		rows[i] = queueRow{QueueStats: q}
		rows[i].Spark, rows[i].Rate = activity(hist)
	}
	h.histMu.Unlock()
	h.render(w, r, "queues", "Queues", rows)
}

// activity draws a queue's throughput (deliveries per second between
// refreshes) when the broker counts deliveries, else its depth.
func activity(hist []sample) (template.HTML, string) {
	if len(hist) > 1 && hist[len(hist)-1].delivered > 0 {
		rates := make([]int64, 0, len(hist)-1)
		var last float64
		for i := 1; i < len(hist); i++ {
			dt := hist[i].at.Sub(hist[i-1].at).Seconds()
			if dt <= 0 {
				continue
			}
			last = float64(max(0, hist[i].delivered-hist[i-1].delivered)) / dt
			rates = append(rates, int64(last*10))
		}
		return sparkline(rates, "deliveries per second"), strconv.FormatFloat(last, 'f', 1, 64) + "/s"
	}
	depths := make([]int64, len(hist))
	for i, s := range hist {
		depths[i] = s.depth
	}
	return sparkline(depths, "depth"), "depth"
}

// sparkline draws samples as an inline SVG polyline.
func sparkline(samples []int64, what string) template.HTML {
	const width, height = 120, 24
	if len(samples) == 0 {
		return ""
	}
	var top int64 = 1
	for _, s := range samples {
		top = max(top, s)
	}
	var pts strings.Builder
	step := float64(width) / float64(max(1, historyLen-1))
	x0 := float64(width) - step*float64(len(samples)-1)
	for i, s := range samples {
		fmt.Fprintf(&pts, "%.1f,%.1f ", x0+step*float64(i), float64(height-2)-float64(s)/float64(top)*float64(height-4))
	}
	line := strings.TrimSpace(pts.String())
	area := fmt.Sprintf("%.1f,%d %s %d,%d", x0, height, line, width, height)
	return template.HTML(fmt.Sprintf(`<svg class="spark" width="%d" height="%d" viewBox="0 0 %d %d" aria-label="%s over the last %d refreshes"><title>%s over the last %d refreshes</title><rect class="track" x="0" y="0" width="%d" height="%d" rx="3"/><polygon points="%s"/><polyline points="%s"/></svg>`,
		width, height, width, height, what, len(samples), what, len(samples), width, height, area, line))
}

// search is the state of the tasks view's search form.
type search struct {
	Queue  string
	State  core.MessageState
	Task   string
	ID     string
	Label  string
	Text   string
	Cursor string
}

func (s search) filter() (core.MessageFilter, error) {
	f := core.MessageFilter{TaskName: s.Task, TaskID: s.ID, Text: s.Text}
	if s.Label != "" {
		k, v, ok := strings.Cut(s.Label, "=")
		if !ok || k == "" {
			return f, fmt.Errorf("label filter %q: write it as key=value", s.Label)
		}
		f.Labels = map[string]string{k: v}
	}
	return f, nil
}

func searchFrom(v url.Values) search {
	s := search{Queue: v.Get("queue"), State: core.MessageState(v.Get("state")), Task: v.Get("task"),
		ID: v.Get("id"), Label: v.Get("label"), Text: v.Get("q"), Cursor: v.Get("cursor")}
	if !s.State.Valid() {
		s.State = core.StateQueued
	}
	return s
}

// tasksView is the data of the tasks view.
type tasksView struct {
	Search   search
	Queues   []core.QueueStats
	Messages []core.MessageInfo
	Next     string
	Filtered bool
	Counts   core.QueueStats
}

func (h *Handler) tasks(w http.ResponseWriter, r *http.Request) {
	in, _ := h.app.Inspector(h.opts.Broker)
	s := searchFrom(r.URL.Query())
	f, err := s.filter()
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, err)
		return
	}
	qs, err := in.Queues(r.Context())
	if err != nil {
		h.fail(w, r, http.StatusBadGateway, err)
		return
	}
	if s.Queue == "" && len(qs) > 0 {
		s.Queue = defaultQueue(qs)
	}
	page, err := in.Messages(r.Context(), core.MessageQuery{Queue: s.Queue, State: s.State, Filter: f, Cursor: s.Cursor, Limit: 50})
	if err != nil {
		h.fail(w, r, http.StatusBadGateway, err)
		return
	}
	v := tasksView{Search: s, Queues: qs, Messages: page.Messages, Next: page.Next, Filtered: !f.IsZero()}
	for _, q := range qs {
		if q.Name == s.Queue {
			v.Counts = q
		}
	}
	view := "tasks"
	if s.State == core.StateDead {
		view = "dead"
	}
	h.renderAs(w, r, "tasks", view, "Tasks", v)
}

// defaultQueue picks the queue a view shows when none is named: the one
// with the most messages.
func defaultQueue(qs []core.QueueStats) string {
	sorted := append([]core.QueueStats(nil), qs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		return sorted[i].Queued+sorted[i].Dead+sorted[i].Running+sorted[i].Delayed > sorted[j].Queued+sorted[j].Dead+sorted[j].Running+sorted[j].Delayed
	})
	return sorted[0].Name
}

// taskView is the data of the task view.
type taskView struct {
	*core.TaskDetail
	Args, Kwargs, Labels string
	Causes               []*core.TaskError
	Cancelled            bool
	Timeline             []event
	Back                 string
}

// event is one line of a task's timeline.
type event struct {
	At   time.Time
	What string
}

func (h *Handler) task(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ref := core.TaskRef{TaskID: r.PathValue("id"), Queue: q.Get("queue"), State: core.MessageState(q.Get("state")), Ref: q.Get("ref")}
	d, err := h.app.TaskDetail(r.Context(), h.opts.Broker, ref)
	if errors.Is(err, core.ErrTaskNotFound) {
		h.fail(w, r, http.StatusNotFound, err)
		return
	}
	if err != nil {
		h.fail(w, r, http.StatusBadGateway, err)
		return
	}
	v := taskView{TaskDetail: d, Back: q.Get("back")}
	if m := d.Decoded; m != nil {
		args, _ := json.MarshalIndent(m.Args, "", "  ")
		kwargs, _ := json.MarshalIndent(m.Kwargs, "", "  ")
		labels, _ := json.MarshalIndent(m.Labels, "", "  ")
		v.Args, v.Kwargs, v.Labels = string(args), string(kwargs), string(labels)
	}
	if m := d.Message; m != nil {
		if !m.EnqueuedAt.IsZero() {
			v.Timeline = append(v.Timeline, event{m.EnqueuedAt, "enqueued in " + m.Queue})
		}
		if !m.DueAt.IsZero() {
			v.Timeline = append(v.Timeline, event{m.DueAt, "due (delayed)"})
		}
		if !m.FailedAt.IsZero() {
			v.Timeline = append(v.Timeline, event{m.FailedAt, "dead-lettered: " + m.Reason})
		}
	}
	if res := d.Result; res != nil && res.Error != nil {
		for c := res.Error.ExcCause; c != nil; c = c.ExcCause {
			v.Causes = append(v.Causes, c)
		}
		v.Cancelled = core.IsCancelled(res.Error)
	}
	sort.Slice(v.Timeline, func(i, j int) bool { return v.Timeline[i].At.Before(v.Timeline[j].At) })
	h.render(w, r, "task", "Task "+d.TaskID, v)
}

func (h *Handler) workers(w http.ResponseWriter, r *http.Request) {
	in, _ := h.app.Inspector(h.opts.Broker)
	ws, err := in.Workers(r.Context())
	if err != nil {
		h.fail(w, r, http.StatusBadGateway, err)
		return
	}
	h.render(w, r, "workers", "Workers", ws)
}

// back is where an action returns to, with its outcome as a flash message:
// the form's "back" path when it is one of the dashboard's, else the tasks
// view.
func (h *Handler) back(w http.ResponseWriter, r *http.Request, msg string) {
	to := r.PostForm.Get("back")
	if !strings.HasPrefix(to, "/") || strings.HasPrefix(to, "//") || strings.HasPrefix(to, "/\\") {
		to = "/tasks"
	}
	u, err := url.Parse(to)
	if err != nil {
		u = &url.URL{Path: "/tasks"}
	}
	q := u.Query()
	q.Set("msg", msg)
	u.RawQuery = q.Encode()
	http.Redirect(w, r, h.link(u.String()), http.StatusSeeOther)
}

// action applies a bulk action to the selected messages or to the whole
// filtered set.
func (h *Handler) action(w http.ResponseWriter, r *http.Request) {
	if !h.checkPost(w, r) {
		return
	}
	in, _ := h.app.Inspector(h.opts.Broker)
	form := r.PostForm
	s := searchFrom(form)
	a := core.Action{Kind: core.ActionKind(form.Get("op")), Queue: s.Queue, State: s.State,
		Target: form.Get("target"), DryRun: form.Get("dry_run") != ""}
	if form.Get("scope") == "filter" {
		f, err := s.filter()
		if err != nil {
			h.fail(w, r, http.StatusBadRequest, err)
			return
		}
		a.Filter = f
	} else {
		a.Refs = form["ref"]
		if len(a.Refs) == 0 {
			h.back(w, r, "nothing selected: tick the messages to act on, or act on the whole filtered set")
			return
		}
	}
	res, err := in.Act(r.Context(), a)
	if err != nil {
		h.back(w, r, "failed: "+err.Error())
		return
	}
	verb := map[core.ActionKind]string{core.ActionRequeue: "re-kicked", core.ActionDelete: "deleted", core.ActionMove: "moved"}[a.Kind]
	if a.DryRun {
		h.back(w, r, fmt.Sprintf("dry run: %s would be %s", countMessages(res.Matched), verb))
		return
	}
	h.back(w, r, fmt.Sprintf("%s %s", countMessages(res.Done), verb))
}

// countMessages is "1 message" or "n messages".
func countMessages(n int) string {
	if n == 1 {
		return "1 message"
	}
	return fmt.Sprintf("%d messages", n)
}

func (h *Handler) pause(w http.ResponseWriter, r *http.Request) {
	if !h.checkPost(w, r) {
		return
	}
	in, _ := h.app.Inspector(h.opts.Broker)
	queue, paused := r.PostForm.Get("queue"), r.PostForm.Get("paused") == "true"
	if err := in.SetPaused(r.Context(), queue, paused); err != nil {
		h.back(w, r, "failed: "+err.Error())
		return
	}
	state := "resumed"
	if paused {
		state = "paused"
	}
	h.back(w, r, "queue "+queue+" "+state)
}

func (h *Handler) cancel(w http.ResponseWriter, r *http.Request) {
	if !h.checkPost(w, r) {
		return
	}
	id := r.PostForm.Get("task_id")
	err := h.app.Cancel(r.Context(), id)
	switch {
	case errors.Is(err, core.ErrTaskFinished):
		h.back(w, r, "task "+id+" already finished; nothing was cancelled")
	case err != nil:
		h.back(w, r, "failed: "+err.Error())
	default:
		h.back(w, r, "task "+id+" cancelled")
	}
}

// scheduleRow is one schedule of the schedules view.
type scheduleRow struct {
	core.ScheduleInfo
	Timing  string
	Next    []time.Time
	Problem string
}

// scheduleFires is how many next fires the schedules view shows.
const scheduleFires = 3

// schedules lists every schedule the scheduler would run (App.Schedules,
// as `taskiq schedule list` does) with its next fires.
func (h *Handler) schedules(w http.ResponseWriter, r *http.Request) {
	list, err := h.app.Schedules(r.Context())
	if err != nil && len(list) == 0 {
		h.fail(w, r, http.StatusBadGateway, err)
		return
	}
	v := struct {
		Rows    []scheduleRow
		Warning string
	}{}
	if err != nil {
		v.Warning = err.Error()
	}
	now := h.opts.Now()
	for _, s := range list {
		row := scheduleRow{ScheduleInfo: s, Timing: core.ScheduleTiming(s.Schedule)}
		row.Next, err = core.NextFireTimes(s.Schedule, now, scheduleFires)
		if err != nil {
			row.Problem = err.Error()
		}
		v.Rows = append(v.Rows, row)
	}
	h.render(w, r, "schedules", "Schedules", v)
}

// scheduleAction pauses, resumes or triggers one schedule.
func (h *Handler) scheduleAction(w http.ResponseWriter, r *http.Request) {
	if !h.checkPost(w, r) {
		return
	}
	id, op := r.PostForm.Get("id"), r.PostForm.Get("op")
	var err error
	var msg string
	switch op {
	case "pause", "resume":
		err = h.app.SetSchedulePaused(r.Context(), id, op == "pause")
		msg = "schedule " + id + " " + op + "d"
	case "trigger":
		var taskID string
		taskID, err = h.app.TriggerSchedule(r.Context(), id)
		msg = "schedule " + id + " triggered: task " + taskID
	default:
		err = fmt.Errorf("unknown schedule action %q (want pause, resume or trigger)", op)
	}
	if err != nil {
		msg = "failed: " + err.Error()
	}
	h.back(w, r, msg)
}
