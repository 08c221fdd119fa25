package sdk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// streamSchema is the config block of an example broker.
var streamSchema = sdk.Schema{Attributes: []sdk.Attribute{
	{Name: "storage", Type: sdk.TypeString, Default: "file", Allowed: []string{"file", "memory"}},
	{Name: "replicas", Type: sdk.TypeNumber, Default: 1, Integer: true, Min: sdk.Num(1), Max: sdk.Num(5)},
	{Name: "connect_timeout", Type: sdk.TypeDuration, Default: "5s"},
	{Name: "subjects", Type: sdk.TypeStringList},
}}

// streamConfig is what the example broker decodes its block into.
type streamConfig struct {
	Storage        string        `json:"storage"`
	Replicas       int           `json:"replicas"`
	ConnectTimeout time.Duration `json:"connect_timeout"`
	Subjects       []string      `json:"subjects"`
}

// checkStream holds the checks New makes that need no connection; it is
// both Factory.Check and the first thing New runs.
func checkStream(_ context.Context, cfg sdk.Config) error {
	var c streamConfig
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	if c.ConnectTimeout < 100*time.Millisecond {
		return sdk.AttrError("connect_timeout", "must be at least 100ms, got %s", c.ConnectTimeout)
	}
	return nil
}

// A config block as the plugin receives it: Schema.Prepare (which the SDK
// runs before Check and New) has filled in the defaults, and Decode turns
// it into typed fields.
func ExampleConfig_Decode() {
	raw, err := streamSchema.Prepare(json.RawMessage(`{"subjects": ["orders.*"]}`))
	if err != nil {
		panic(err)
	}
	var c streamConfig
	if err := (sdk.Config{Raw: raw}).Decode(&c); err != nil {
		panic(err)
	}
	fmt.Printf("%s %d %s %v\n", c.Storage, c.Replicas, c.ConnectTimeout, c.Subjects)
	// Output: file 1 5s [orders.*]
}

// What `taskiq config validate` reports for values the schema refuses
// (the host points each at its line in taskiq.hcl), and for one only the
// plugin's Check refuses.
func ExampleSchema_Prepare() {
	_, err := streamSchema.Prepare(json.RawMessage(`{"storage": "disk", "replicas": 1.5}`))
	for _, ce := range sdk.ConfigErrors(err) {
		fmt.Println(ce)
	}
	raw, _ := streamSchema.Prepare(json.RawMessage(`{"connect_timeout": "10ms"}`))
	fmt.Println(checkStream(context.Background(), sdk.Config{Raw: raw}))
	// Output:
	// storage: must be one of "file", "memory", got "disk"
	// replicas: must be a whole number, got 1.5
	// connect_timeout: must be at least 100ms, got 10ms
}
