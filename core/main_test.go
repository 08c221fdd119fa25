package core_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
	"github.com/taskiq-go/taskiq/plugins/inmemory"
)

// envTestPlugin makes the test binary serve one of testPlugins instead of
// running tests (go-plugin's helper-process idiom): host and plugins are real
// processes in these tests. A plugin block selects one with
// env = { TASKIQ_CORE_TEST_PLUGIN = "<name>" }.
const envTestPlugin = "TASKIQ_CORE_TEST_PLUGIN"

// testPlugins are the plugins this test binary can serve.
var testPlugins = map[string]func() sdk.Plugin{
	"inmemory": inmemory.Plugin,
	"recorder": recorderPlugin,
}

func TestMain(m *testing.M) {
	if name := os.Getenv(envTestPlugin); name != "" {
		p, ok := testPlugins[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown test plugin %q\n", name)
			os.Exit(2)
		}
		sdk.Serve(p())
		os.Exit(0)
	}
	// Tests end with nothing the App, the worker or a plugin client started
	// still running: App.Close and RunWorker wait for their goroutines.
	goleak.VerifyTestMain(m)
}

// recordingMiddleware appends "<name>.<hook>" lines to a file, so a test can
// see the hooks a middleware plugin process was called with.
type recordingMiddleware struct {
	name string
	path string
}

func (m recordingMiddleware) record(hook string) error {
	f, err := os.OpenFile(m.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "%s.%s\n", m.name, hook)
	return err
}

func (m recordingMiddleware) PreSend(_ context.Context, msg *wire.Message) error {
	msg.SetLabel("seen_by_"+m.name, true)
	return m.record("pre_send")
}
func (m recordingMiddleware) PostSend(context.Context, *wire.Message) error {
	return m.record("post_send")
}
func (m recordingMiddleware) PreExecute(context.Context, *wire.Message) error {
	return m.record("pre_execute")
}
func (m recordingMiddleware) OnError(context.Context, *wire.Message, *wire.Result, error) error {
	return m.record("on_error")
}
func (m recordingMiddleware) PostExecute(context.Context, *wire.Message, *wire.Result) error {
	return m.record("post_execute")
}
func (m recordingMiddleware) PostSave(context.Context, *wire.Message, *wire.Result) error {
	return m.record("post_save")
}

// recorderPlugin implements all six hooks but declares those listed in its
// `hooks` config attribute (all by default), so a test can prove the host
// calls only declared hooks.
func recorderPlugin() sdk.Plugin {
	type cfg struct {
		Name string `json:"name"`
		Path string `json:"path"`
	}
	p := sdk.Plugin{
		Name:    "taskiq-test-recorder",
		Version: "0.0.1",
		Middleware: &sdk.Factory[sdk.Middleware]{
			Schema: sdk.Schema{Attributes: []sdk.Attribute{
				{Name: "name", Type: sdk.TypeString, Required: true, Description: "prefix of recorded lines"},
				{Name: "path", Type: sdk.TypeString, Required: true, Description: "file to append to"},
			}},
			New: func(_ context.Context, c sdk.Config) (sdk.Middleware, error) {
				var v cfg
				if err := c.Decode(&v); err != nil {
					return nil, err
				}
				return recordingMiddleware{name: v.Name, path: v.Path}, nil
			},
		},
	}
	if hooks := os.Getenv("TASKIQ_CORE_TEST_HOOKS"); hooks != "" {
		for _, h := range splitComma(hooks) {
			p.Hooks = append(p.Hooks, sdk.Hook(h))
		}
	}
	return p
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}
