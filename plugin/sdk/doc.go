// Package sdk is what a taskiq-go plugin author imports.
//
// A plugin binary implements one or more roles as plain Go interfaces
// (Broker, ResultBackend, a Middleware with the hooks it wants) and calls
// Serve once from main. The SDK carries those interfaces across the process
// boundary with hashicorp/go-plugin and gRPC; plugin authors never import gRPC.
//
// The same interfaces are what the host (package core) programs against: a
// plugin process is one implementation of sdk.Broker, an in-process value is
// another, and tests use both.
//
// The hot path is batched: Broker.Kick takes a batch, deliveries arrive in
// batches through Stream.Recv, settlements (ack, nack, lease extension, dead
// letter) go back in batches, and result writes are batched.
//
// A minimal plugin binary declares its roles and calls Serve from main; the
// host (taskiq.hcl's broker, result_backend or middleware block) starts it,
// configures one role and talks to it over gRPC:
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
// Test it as a real process with package sdktest: call
// sdktest.RunPluginIfRequested from TestMain and sdktest.Launch in tests.
package sdk
