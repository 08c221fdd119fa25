// Package sdk is what a taskiq-go plugin author imports.
//
// A plugin binary implements one or more roles as plain Go interfaces and
// calls Serve once from main. The SDK carries those interfaces across the
// process boundary with hashicorp/go-plugin and gRPC; plugin authors never
// import gRPC.
//
// # Writing a plugin
//
// Declare the binary's identity and, per role it serves, a Factory: the
// role's config Schema, its optional Capabilities, and New, which builds the
// role from the decoded config block of taskiq.hcl. The host (a broker,
// result_backend, middleware or schedule_source block) starts the binary, configures one role
// and talks to it over gRPC:
//
//	func main() {
//		sdk.Serve(sdk.Plugin{
//			Name:    "taskiq-example",
//			Version: "0.1.0",
//			Broker: &sdk.Factory[sdk.Broker]{
//				Capabilities: []string{sdk.CapAckable},
//				Schema: sdk.Schema{Attributes: []sdk.Attribute{
//					{Name: "queue", Type: sdk.TypeString, Default: "taskiq"},
//				}},
//				New: func(ctx context.Context, cfg sdk.Config) (sdk.Broker, error) {
//					var c struct{ Queue string `json:"queue"` }
//					if err := cfg.Decode(&c); err != nil {
//						return nil, err
//					}
//					return newExampleBroker(c.Queue, cfg.Logger), nil
//				},
//			},
//		})
//	}
//
// Bad config is returned from New as AttrError values (joined with
// errors.Join): the host shows each with the attribute it concerns. A role
// whose capabilities depend on its config implements Capable.
//
// # Config
//
// The Schema's attributes may declare Allowed values, Integer and Min/Max;
// the host checks them (and the types) at the attribute's line in
// taskiq.hcl. In the plugin, Schema.Prepare checks the block again and
// fills in the defaults before New runs, whoever launched it, and
// Config.Decode fills a struct with typed fields (time.Duration, integer
// types, []string, map[string]string), reporting each problem as an
// AttrError. Factory.Check, when set, runs New's checks without building
// anything, for `taskiq config validate`.
//
// # Roles
//
//   - Broker (broker.go): Kick takes a batch of Outgoing messages; Listen
//     opens a Stream whose Recv hands out Delivery batches and whose Settle
//     takes Settlement batches (ack, nack, lease extension, dead letter).
//     The host bounds the deliveries outstanding on a stream (its prefetch).
//     A Stream whose service renews every extension by a fixed ack timeout
//     implements LeaseGranter; a broker whose delivery ids survive a
//     restart of its process declares CapStableIDs, and the host then sends
//     the settlements a dead process did not apply to the next one.
//   - ResultBackend (results.go): batched SetResults, GetResult, IsReady and
//     progress; a backend that can block until a result exists also
//     implements ResultWaiter (capability CapWait).
//   - Middleware (middleware.go): a value implementing one or more of the
//     hook interfaces PreSender, PostSender, PreExecuter, ErrorHandler,
//     PostExecuter and PostSaver. Serve and the host check it with
//     CheckMiddleware: a value with no hook, or with a method that looks like
//     a misspelled hook, is refused with an error naming it. A middleware
//     reaches the host's brokers and result backend through Config.Host.
//     Serve declares CapHookStream for it: the host sends the hook calls of
//     concurrent tasks in batches over one stream; and CapHookLabelChanges:
//     a hook that changed only labels answers with those labels alone.
//   - TaskModule (tasks.go): the task functions of a module binary that a
//     generic worker runs; ServeTasks serves one.
//   - Inspector and Canceller (inspect.go), optional on a broker
//     (capabilities CapInspect and CapCancel): queue counts (cached, never
//     counted by a scan), messages by state with cursors and filters, one
//     task, bulk actions by refs or filter with dry runs, pause/resume,
//     worker heartbeats, and cancellation tombstones with their broadcast.
//     The configured role is type-asserted; conformance.TestInspector
//     checks it.
//
// Errors cross the boundary by sentinel: return (or wrap) ErrNotFound,
// ErrUnsupported, ErrMessageTooLarge, ErrUnavailable or ErrClosed, and the
// host sees an error matching the same sentinel with errors.Is.
//
// Messages and results are package wire's types (wire.Message, wire.Result),
// the JSON format taskiq's Python workers speak.
//
// # Stability
//
// Protocol v1 (ProtocolVersion, the proto package taskiq.plugin.v1) changes
// only additively: new RPCs, new messages, new fields, new capability
// strings. What may change inside v1, and how each side copes with a peer
// that predates it:
//
//   - A new RPC: a plugin built before it answers Unimplemented, which the
//     host sees as ErrUnsupported and works without (Client.CheckConfig).
//   - A new field: absent, so zero, from an older peer; its zero value
//     always means what the behaviour was before the field existed (no
//     message size limit of a broker's own, no constraint on an attribute).
//   - A new behaviour a plugin opts into: a capability string (Cap*
//     constants) it declares in Info or Configure; the host relies on none
//     it was not told of, and an older host ignores those it does not know.
//
// What does not change inside v1: field numbers and meanings, RPC names and
// their streams' message order, the handshake, and the meaning of every
// capability. Such a change is protocol v2. The Go API follows the same
// rule: interfaces a plugin implements gain no methods (new features come
// as optional interfaces such as Capable and MessageSizeLimiter, or new
// Factory fields), and exported names and their meanings stay. A plugin
// built against an older SDK of v1 needs no rebuild to keep working with a
// newer host. CHANGELOG.md in this directory lists what each release added.
//
// # Testing a plugin
//
// Package sdktest runs the plugin as a real process from go test: call
// sdktest.RunPluginIfRequested from TestMain and sdktest.Launch in tests.
// Package conformance holds the behaviour every broker, result backend and
// schedule source must show; run it against your plugin through sdktest.
//
// # Which half is which
//
// The files of this package are split by side, as go-plugin splits its
// grpc_client.go and grpc_server.go.
//
// The plugin author's files: the role interfaces (broker.go, results.go,
// middleware.go, tasks.go, schedule.go, host.go; capabilities_dedup.go), the plugin description (plugin.go,
// schema.go, with schema_check.go: Schema.Prepare and Attribute.Check, and
// config_decode.go: Config.Decode), the size limits and environment (limits.go, env.go), log
// redaction (redact.go) and the plugin side of each role, which Serve runs
// inside the plugin process: serve_plugin.go (Serve, with umask_*.go),
// base_plugin.go (pluginServer: Info, Configure, Shutdown), broker_plugin.go
// (brokerServer, listenSession), results_plugin.go (resultsServer),
// watch_plugin.go (WatchResults), middleware_plugin.go (middlewareServer),
// tasks_plugin.go (tasksServer), schedule_plugin.go (scheduleServer) and
// hostservice_plugin.go (hostClient, the
// Host a plugin calls).
//
// The host's files, used by package core and never by a plugin: Client
// (client_host.go), Launch and LaunchConfig (launch_host.go, runner_host.go,
// pluginlog_host.go: how a plugin's log lines enter the host's log),
// and the shims that make a plugin process look like a local role:
// broker_host.go (remoteBroker, remoteStream), results_host.go
// (remoteResults), watch_host.go (the result watcher), middleware_host.go
// (remoteMiddleware), tasks_host.go (remoteTasks), schedule_host.go
// (remoteSchedules) and hostservice_host.go
// (hostServer, which serves the host's Host to a plugin).
//
// Shared by both: handshake.go (the go-plugin handshake), pluginset.go (the
// go-plugin plugin set), protocol.go (the constants both halves agree on
// beyond the proto) and convert.go and schedule_convert.go (conversions
// between these types, errors and the proto messages).
package sdk
