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
func setup(t *testing.T, opts dashboard.Options) *bundle {
	t.Helper()
	b := &bundle{broker: inmemory.NewBroker(inmemory.BrokerOptions{})}
	app, err := core.New(core.WithBroker("default", b.broker, inmemory.BrokerCapabilities...),
		core.WithResultBackend(inmemory.NewResultBackend(inmemory.ResultOptions{}), sdk.CapWait, sdk.CapProgress),
		core.WithLogger(hclog.NewNullLogger()))
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
	b.client = &http.Client{Jar: jar}
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
	require.Contains(t, body, "1 messages re-kicked")
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
