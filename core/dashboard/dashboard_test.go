package dashboard_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/core/dashboard"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugins/inmemory"
)

type bundle struct {
	app    *core.App
	broker *inmemory.Broker
	srv    *httptest.Server
	client *http.Client
}

// setup serves the dashboard of an in-memory App under prefix, with one
// dead letter of task "dash.fail" and one queued message of "dash.ok".
func setup(t *testing.T, opts dashboard.Options, more ...core.Option) *bundle {
	t.Helper()
	b := &bundle{broker: inmemory.NewBroker(inmemory.BrokerOptions{})}
	app, err := core.New(append([]core.Option{core.WithBroker("default", b.broker, inmemory.BrokerCapabilities...),
		core.WithResultBackend(inmemory.NewResultBackend(inmemory.ResultOptions{}), sdk.CapWait, sdk.CapProgress),
		core.WithLogger(hclog.NewNullLogger())}, more...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = app.Close(context.Background()) })
	b.app = app
	core.MustTask[int](app, "dash.ok", func(ctx context.Context, n int) (int, error) { return n, nil })
	ctx := context.Background()
	ok := core.MustTask[int](app, "dash.ok2", func(ctx context.Context, n int) (int, error) { return n, nil })
	_, err = ok.Kicker().WithTaskID("queued-1").Kiq(ctx, 41)
	require.NoError(t, err)
	s, err := b.broker.Listen(ctx, sdk.ListenRequest{})
	require.NoError(t, err)
	_, err = ok.Kicker().WithTaskID("dead-1").Kiq(ctx, 13)
	require.NoError(t, err)
	ds, err := s.Recv(ctx, 2)
	require.NoError(t, err)
	require.NoError(t, s.Settle(ctx, []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleNack}, {DeliveryID: ds[1].ID, Kind: sdk.SettleDeadLetter, Reason: "boom: upstream timeout"}}))
	require.NoError(t, s.Close())

	h, err := dashboard.New(app, opts)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle(opts.Prefix+"/", h)
	b.srv = httptest.NewServer(mux)
	t.Cleanup(b.srv.Close)
	jar, _ := cookiejar.New(nil)
	// Its own transport: httptest.Server.Close closes the idle connections
	// of http.DefaultTransport, which parallel tests would share.
	b.client = &http.Client{Jar: jar, Transport: &http.Transport{}}
	return b
}

func (b *bundle) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := b.client.Get(b.srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (b *bundle) post(t *testing.T, path string, form url.Values) (int, string) {
	t.Helper()
	resp, err := b.client.PostForm(b.srv.URL+path, form)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([0-9a-f]{32})"`)

func TestViewsUnderAPrefix(t *testing.T) {
	t.Parallel()
	b := setup(t, dashboard.Options{Prefix: "/ops/taskiq"})
	code, body := b.get(t, "/ops/taskiq/")
	require.Equal(t, 200, code)
	require.Contains(t, body, `id="queues"`, "the root redirects to the queues view")
	require.Contains(t, body, `href="/ops/taskiq/tasks?queue=taskiq"`, "links carry the prefix")

	_, body = b.get(t, "/ops/taskiq/tasks?state=dead")
	require.Contains(t, body, "dead-1")
	require.Contains(t, body, "boom: upstream timeout")
	_, body = b.get(t, "/ops/taskiq/tasks?state=dead&q=nomatch")
	require.Contains(t, body, "No dead messages match this search")
	_, body = b.get(t, "/ops/taskiq/tasks?state=queued&task=dash.ok2")
	require.Contains(t, body, "queued-1")

	code, body = b.get(t, "/ops/taskiq/task/dead-1")
	require.Equal(t, 200, code)
	require.Contains(t, body, `id="state">dead<`)
	require.Contains(t, body, "[\n  13\n]", "args shown")
	code, _ = b.get(t, "/ops/taskiq/task/nope")
	require.Equal(t, 404, code)
	code, body = b.get(t, "/ops/taskiq/workers")
	require.Equal(t, 200, code)
	require.Contains(t, body, "No live workers")
	code, _ = b.get(t, "/ops/taskiq/static/style.css")
	require.Equal(t, 200, code)
	code, _ = b.get(t, "/elsewhere")
	require.Equal(t, 404, code)
}

func TestActionsNeedCSRF(t *testing.T) {
	t.Parallel()
	b := setup(t, dashboard.Options{})
	_, page := b.get(t, "/tasks?state=dead")
	m := csrfRe.FindStringSubmatch(page)
	require.NotNil(t, m, "the page carries a CSRF token")
	refRe := regexp.MustCompile(`name="ref" value="([^"]+)"`)
	ref := refRe.FindStringSubmatch(page)[1]

	form := url.Values{"op": {"requeue"}, "state": {"dead"}, "queue": {"taskiq"}, "ref": {ref}}
	code, _ := b.post(t, "/actions", form)
	require.Equal(t, http.StatusForbidden, code, "no CSRF token")
	form.Set("csrf", strings.Repeat("0", 32))
	code, _ = b.post(t, "/actions", form)
	require.Equal(t, http.StatusForbidden, code, "a wrong CSRF token")
	require.Len(t, b.broker.DeadLetters(), 1)

	form.Set("csrf", m[1])
	for _, evil := range []string{"//evil.example", "/\\evil.example", "https://evil.example"} {
		form.Set("back", evil)
		form.Set("dry_run", "1")
		resp, err := (&http.Client{Jar: b.client.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).PostForm(b.srv.URL+"/actions", form)
		require.NoError(t, err)
		resp.Body.Close()
		require.True(t, strings.HasPrefix(resp.Header.Get("Location"), "/tasks?"), "an action never redirects off the dashboard: %q", resp.Header.Get("Location"))
	}
	form.Del("dry_run")
	form.Set("back", "/tasks?state=dead")
	code, body := b.post(t, "/actions", form)
	require.Equal(t, 200, code)
	require.Contains(t, body, "1 message re-kicked")
	require.Empty(t, b.broker.DeadLetters())
	require.Equal(t, 2, b.broker.Len(""), "the dead letter is queued again")
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	b := setup(t, dashboard.Options{ReadOnly: true})
	_, page := b.get(t, "/tasks?state=dead")
	require.NotContains(t, page, `name="csrf"`, "no action is offered")
	require.NotContains(t, page, "Re-kick")
	code, _ := b.post(t, "/actions", url.Values{"op": {"delete"}, "state": {"dead"}, "scope": {"filter"}})
	require.Equal(t, http.StatusForbidden, code)
	require.Len(t, b.broker.DeadLetters(), 1)
}

func TestTokenAndBasicAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, dashboard.Options{Token: "s3cret"})
	code, _ := b.get(t, "/queues")
	require.Equal(t, http.StatusUnauthorized, code)
	code, body := b.get(t, "/queues?token=s3cret")
	require.Equal(t, 200, code, "the token lets the request in and sets a cookie")
	require.NotContains(t, body, "s3cret", "the token is never rendered")
	code, _ = b.get(t, "/workers")
	require.Equal(t, 200, code, "the cookie authenticates")

	ba := setup(t, dashboard.Options{BasicUser: "ops", BasicPassword: "pw"})
	code, _ = ba.get(t, "/queues")
	require.Equal(t, http.StatusUnauthorized, code)
	req, _ := http.NewRequest("GET", ba.srv.URL+"/queues", nil)
	req.SetBasicAuth("ops", "pw")
	resp, err := ba.client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
}

func TestPauseAndCancelActions(t *testing.T) {
	t.Parallel()
	b := setup(t, dashboard.Options{})
	_, page := b.get(t, "/queues")
	csrf := csrfRe.FindStringSubmatch(page)[1]
	code, body := b.post(t, "/pause", url.Values{"csrf": {csrf}, "queue": {"taskiq"}, "paused": {"true"}, "back": {"/queues"}})
	require.Equal(t, 200, code)
	require.Contains(t, body, "queue taskiq paused")
	require.Contains(t, body, `class="badge paused"`)
	qs, err := mustInspector(t, b).Queues(context.Background())
	require.NoError(t, err)
	require.True(t, qs[0].Paused)

	code, body = b.post(t, "/cancel", url.Values{"csrf": {csrf}, "task_id": {"queued-1"}, "back": {"/task/queued-1"}})
	require.Equal(t, 200, code)
	require.Contains(t, body, "task queued-1 cancelled")
}

func mustInspector(t *testing.T, b *bundle) core.Inspector {
	t.Helper()
	in, err := b.app.Inspector("")
	require.NoError(t, err)
	return in
}

// A move takes the selected messages, or the whole filtered set, to the
// target queue; a dry run only counts them.
func TestMoveAction(t *testing.T) {
	t.Parallel()
	b := setup(t, dashboard.Options{})
	_, page := b.get(t, "/tasks?state=dead")
	require.Contains(t, page, `id="move-selected"`)
	csrf := csrfRe.FindStringSubmatch(page)[1]
	ref := regexp.MustCompile(`name="ref" value="([^"]+)"`).FindStringSubmatch(page)[1]

	form := url.Values{"csrf": {csrf}, "op": {"move"}, "state": {"dead"}, "queue": {"taskiq"}, "scope": {"selected"}, "back": {"/tasks?state=dead"}}
	code, body := b.post(t, "/actions", form)
	require.Equal(t, 200, code)
	require.Contains(t, body, "nothing selected")
	form.Set("ref", ref)
	code, body = b.post(t, "/actions", form)
	require.Equal(t, 200, code)
	require.Contains(t, body, "needs a target queue")

	form.Set("target", "parked")
	form.Set("dry_run", "1")
	_, body = b.post(t, "/actions", form)
	require.Contains(t, body, "dry run: 1 message would be moved")
	require.Len(t, b.broker.DeadLetters(), 1)
	form.Del("dry_run")
	_, body = b.post(t, "/actions", form)
	require.Contains(t, body, "1 message moved")
	require.Empty(t, b.broker.DeadLetters())
	require.Equal(t, 1, b.broker.Len("parked"))

	// The whole filtered set of queued messages: task dash.ok2 matches the
	// nacked queued-1; another task name matches nothing.
	all := url.Values{"csrf": {csrf}, "op": {"move"}, "state": {"queued"}, "queue": {"taskiq"}, "scope": {"filter"}, "task": {"dash.nothing"}, "target": {"parked"}}
	_, body = b.post(t, "/actions", all)
	require.Contains(t, body, "0 messages moved")
	all.Set("task", "dash.ok2")
	_, body = b.post(t, "/actions", all)
	require.Contains(t, body, "1 message moved")
	require.Equal(t, 0, b.broker.Len(""))
	require.Equal(t, 2, b.broker.Len("parked"))
}

// The schedules view lists every schedule with its next fires; pause,
// resume and trigger are CSRF-protected POSTs, hidden in read-only mode.
func TestSchedulesView(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	src := inmemory.NewScheduleSource(time.Now)
	require.NoError(t, src.Add(context.Background(), core.Schedule{ID: "dyn", TaskName: "dash.ok", Interval: time.Hour}))
	opts := []core.Option{core.WithSchedules(core.Schedule{ID: "nightly", TaskName: "dash.ok", Cron: "30 2 * * *"}),
		core.WithScheduleSource("mem", src, inmemory.ScheduleCapabilities...)}
	b := setup(t, dashboard.Options{Now: func() time.Time { return now }}, opts...)
	code, page := b.get(t, "/schedules")
	require.Equal(t, 200, code)
	require.Contains(t, page, "cron 30 2 * * *")
	require.Contains(t, page, "every 1h0m0s")
	require.Contains(t, page, `title="2026-12-03 02:30:00 UTC">in 16h30m`, "the next fire, relative to the dashboard's clock")
	require.Contains(t, page, "source:mem")
	csrf := csrfRe.FindStringSubmatch(page)[1]

	code, _ = b.post(t, "/schedule", url.Values{"op": {"pause"}, "id": {"dyn"}})
	require.Equal(t, http.StatusForbidden, code, "no CSRF token")
	code, page = b.post(t, "/schedule", url.Values{"csrf": {csrf}, "op": {"pause"}, "id": {"dyn"}, "back": {"/schedules"}})
	require.Equal(t, 200, code)
	require.Contains(t, page, "schedule dyn paused")
	require.Contains(t, page, `id="resume-dyn"`)
	got, _ := src.Schedules(context.Background())
	require.True(t, got[0].Paused)
	_, page = b.post(t, "/schedule", url.Values{"csrf": {csrf}, "op": {"resume"}, "id": {"dyn"}, "back": {"/schedules"}})
	require.Contains(t, page, "schedule dyn resumed")
	_, page = b.post(t, "/schedule", url.Values{"csrf": {csrf}, "op": {"pause"}, "id": {"nightly"}, "back": {"/schedules"}})
	require.Contains(t, page, "failed: schedule &#34;nightly&#34; comes from")

	before := b.broker.Len("")
	_, page = b.post(t, "/schedule", url.Values{"csrf": {csrf}, "op": {"trigger"}, "id": {"nightly"}, "back": {"/schedules"}})
	require.Contains(t, page, "schedule nightly triggered: task sched:nightly:manual:")
	require.Equal(t, before+1, b.broker.Len(""))

	ro := setup(t, dashboard.Options{ReadOnly: true}, opts...)
	_, page = ro.get(t, "/schedules")
	require.Contains(t, page, "nightly")
	require.NotContains(t, page, "Trigger now")
	code, _ = ro.post(t, "/schedule", url.Values{"op": {"trigger"}, "id": {"nightly"}})
	require.Equal(t, http.StatusForbidden, code)
}
