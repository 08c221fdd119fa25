package inmemory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Name is the plugin's name, as the host lists it.
const Name = "taskiq-inmemory"

// Version is the plugin's version.
const Version = "0.1.0"

// BrokerCapabilities are the optional broker features this plugin
// implements. It does not claim "ackable": unacked deliveries survive a
// worker crash, but not a crash of the plugin process itself.
var BrokerCapabilities = []string{sdk.CapDelay, sdk.CapPriority, sdk.CapLease, sdk.CapDeadLetter, sdk.CapRouting, sdk.CapDedup}

// ResultCapabilities are the optional result backend features this plugin
// implements.
var ResultCapabilities = []string{sdk.CapWait, sdk.CapProgress}

// Plugin describes the taskiq-inmemory binary: a broker and a result
// backend, both living in the plugin process.
func Plugin() sdk.Plugin {
	return sdk.Plugin{
		Name:    Name,
		Version: Version,
		Broker: &sdk.Factory[sdk.Broker]{
			Schema:       brokerSchema(),
			Capabilities: BrokerCapabilities,
			New:          newBrokerFromConfig,
		},
		ResultBackend: &sdk.Factory[sdk.ResultBackend]{
			Schema:       resultSchema(),
			Capabilities: ResultCapabilities,
			New:          newResultBackendFromConfig,
		},
		ScheduleSource: &sdk.Factory[sdk.ScheduleSource]{
			Capabilities: ScheduleCapabilities,
			New: func(context.Context, sdk.Config) (sdk.ScheduleSource, error) {
				return NewScheduleSource(time.Now), nil
			},
		},
	}
}

func brokerSchema() sdk.Schema {
	return sdk.Schema{Attributes: []sdk.Attribute{
		{
			Name:        "queue",
			Type:        sdk.TypeString,
			Default:     DefaultQueue,
			Description: "Default queue: used by kicks without a queue_name label and by workers that listen to no queue in particular.",
		},
		{
			Name:        "lease",
			Type:        sdk.TypeDuration,
			Default:     DefaultLease.String(),
			Description: "Visibility lease of a delivery when the worker asks for none. A delivery neither settled nor extended within it is redelivered, possibly to another worker.",
		},
		{
			Name:        "max_attempts",
			Type:        sdk.TypeNumber,
			Default:     0,
			Description: "How many times one message may be delivered; a message coming back after that many deliveries goes to the dead-letter store with the reason \"exceeded max_attempts\". 0 means unlimited.",
		},
	}}
}

func resultSchema() sdk.Schema {
	return sdk.Schema{Attributes: []sdk.Attribute{
		{
			Name:        "result_ttl",
			Type:        sdk.TypeDuration,
			Default:     "0s",
			Description: "How long a result and the task's progress stay readable after they are stored. 0s keeps them until the plugin process exits (memory grows with every task).",
		},
		{
			Name:        "keep_results",
			Type:        sdk.TypeBool,
			Default:     true,
			Description: "Keep a result after it was read. false deletes it (and the task's progress) on the first read.",
		},
	}}
}

type brokerConfig struct {
	Queue       *string  `json:"queue"`
	Lease       *string  `json:"lease"`
	MaxAttempts *float64 `json:"max_attempts"`
}

func newBrokerFromConfig(ctx context.Context, cfg sdk.Config) (sdk.Broker, error) {
	opts, err := brokerOptionsFromConfig(cfg)
	if err != nil {
		return nil, err
	}
	return NewBroker(opts), nil
}

func brokerOptionsFromConfig(cfg sdk.Config) (BrokerOptions, error) {
	var c brokerConfig
	if err := decode(cfg, &c); err != nil {
		return BrokerOptions{}, err
	}
	opts := BrokerOptions{Logger: cfg.Logger, Lease: DefaultLease}
	var errs []error
	if c.Queue != nil {
		opts.Queue = *c.Queue
	}
	if c.Lease != nil {
		d, err := parseDuration(*c.Lease)
		switch {
		case err != nil:
			errs = append(errs, sdk.AttrError("lease", "not a duration (write it like \"30s\" or \"5m\"): %v", err))
		case d <= 0:
			errs = append(errs, sdk.AttrError("lease", "must be positive, got %q; a delivery needs time to be settled", *c.Lease))
		default:
			opts.Lease = d
		}
	}
	if c.MaxAttempts != nil {
		n := *c.MaxAttempts
		if n < 0 || n != math.Trunc(n) || n > math.MaxInt32 {
			errs = append(errs, sdk.AttrError("max_attempts", "must be a whole number, 0 (unlimited) or more, got %v", n))
		} else {
			opts.MaxAttempts = int(n)
		}
	}
	return opts, errors.Join(errs...)
}

type resultConfig struct {
	ResultTTL   *string `json:"result_ttl"`
	KeepResults *bool   `json:"keep_results"`
}

func newResultBackendFromConfig(ctx context.Context, cfg sdk.Config) (sdk.ResultBackend, error) {
	opts, err := resultOptionsFromConfig(cfg)
	if err != nil {
		return nil, err
	}
	return NewResultBackend(opts), nil
}

func resultOptionsFromConfig(cfg sdk.Config) (ResultOptions, error) {
	var c resultConfig
	if err := decode(cfg, &c); err != nil {
		return ResultOptions{}, err
	}
	var opts ResultOptions
	if c.ResultTTL != nil {
		d, err := parseDuration(*c.ResultTTL)
		switch {
		case err != nil:
			return opts, sdk.AttrError("result_ttl", "not a duration (write it like \"1h\", or \"0s\" to keep results forever): %v", err)
		case d < 0:
			return opts, sdk.AttrError("result_ttl", "must not be negative, got %q; use \"0s\" to keep results forever", *c.ResultTTL)
		}
		opts.TTL = d
	}
	if c.KeepResults != nil {
		opts.DiscardOnRead = !*c.KeepResults
	}
	return opts, nil
}

// parseDuration accepts Go duration strings, and "" for zero.
func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

// decode decodes the config block, turning a value of the wrong JSON type
// into an error on its attribute.
func decode(cfg sdk.Config, v any) error {
	err := cfg.Decode(v)
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return sdk.AttrError(te.Field, "expected a value of Go type %s, got a JSON %s", te.Type, te.Value)
	}
	if err != nil {
		return fmt.Errorf("in-memory plugin config: %w", err)
	}
	return nil
}
