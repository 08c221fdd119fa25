package inmemory

import (
	"context"
	"errors"
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
var BrokerCapabilities = []string{sdk.CapDelay, sdk.CapPriority, sdk.CapLease, sdk.CapDeadLetter, sdk.CapRouting}

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
			Check:        checkBrokerConfig,
		},
		ResultBackend: &sdk.Factory[sdk.ResultBackend]{
			Schema:       resultSchema(),
			Capabilities: ResultCapabilities,
			New:          newResultBackendFromConfig,
			Check:        checkResultConfig,
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
			Integer:     true,
			Min:         sdk.Num(0),
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
	Queue       *string        `json:"queue"`
	Lease       *time.Duration `json:"lease"`
	MaxAttempts *int           `json:"max_attempts"`
}

func newBrokerFromConfig(ctx context.Context, cfg sdk.Config) (sdk.Broker, error) {
	opts, err := brokerOptionsFromConfig(cfg)
	if err != nil {
		return nil, err
	}
	return NewBroker(opts), nil
}

// checkBrokerConfig is the broker's Factory.Check: the checks of New,
// building nothing.
func checkBrokerConfig(_ context.Context, cfg sdk.Config) error {
	_, err := brokerOptionsFromConfig(cfg)
	return err
}

// brokerOptionsFromConfig decodes the broker block. Absent attributes
// (New called without a host, in tests or library use) keep the defaults.
func brokerOptionsFromConfig(cfg sdk.Config) (BrokerOptions, error) {
	// A value Decode refuses leaves its field nil: the others are still
	// checked, so every problem is reported at once.
	var c brokerConfig
	errs := []error{cfg.Decode(&c)}
	opts := BrokerOptions{Logger: cfg.Logger, Lease: DefaultLease}
	if c.Queue != nil {
		opts.Queue = *c.Queue
	}
	if c.Lease != nil {
		if *c.Lease <= 0 {
			errs = append(errs, sdk.AttrError("lease", "must be positive, got %s; a delivery needs time to be settled", *c.Lease))
		} else {
			opts.Lease = *c.Lease
		}
	}
	if c.MaxAttempts != nil {
		if *c.MaxAttempts < 0 {
			errs = append(errs, sdk.AttrError("max_attempts", "must be a whole number, 0 (unlimited) or more, got %d", *c.MaxAttempts))
		} else {
			opts.MaxAttempts = *c.MaxAttempts
		}
	}
	return opts, errors.Join(errs...)
}

type resultConfig struct {
	ResultTTL   *time.Duration `json:"result_ttl"`
	KeepResults *bool          `json:"keep_results"`
}

func newResultBackendFromConfig(ctx context.Context, cfg sdk.Config) (sdk.ResultBackend, error) {
	opts, err := resultOptionsFromConfig(cfg)
	if err != nil {
		return nil, err
	}
	return NewResultBackend(opts), nil
}

// checkResultConfig is the result backend's Factory.Check.
func checkResultConfig(_ context.Context, cfg sdk.Config) error {
	_, err := resultOptionsFromConfig(cfg)
	return err
}

func resultOptionsFromConfig(cfg sdk.Config) (ResultOptions, error) {
	var c resultConfig
	if err := cfg.Decode(&c); err != nil {
		return ResultOptions{}, err
	}
	var opts ResultOptions
	if c.ResultTTL != nil {
		opts.TTL = *c.ResultTTL
	}
	if c.KeepResults != nil {
		opts.DiscardOnRead = !*c.KeepResults
	}
	return opts, nil
}
