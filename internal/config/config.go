package config

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Defaults of the host settings. They match Python taskiq where taskiq has
// the same knob, so a taskiq user finds the same behaviour.
const (
	DefaultPluginDir         = "./bin"
	DefaultWorkers           = 2
	DefaultMaxAsyncTasks     = 100
	DefaultAckType           = AckWhenSaved
	DefaultShutdownTimeout   = 30 * time.Second
	maxMessageSizeUpperBound = 1<<31 - 1 // protobuf cannot carry a larger message
)

// Values of worker.ack_type: when the worker acknowledges a delivery. These
// are the one definition of the ack types; core.AckType takes its values
// from here.
const (
	// AckWhenReceived acks as soon as the message is received, before the
	// task runs: a crash loses the task (at-most-once).
	AckWhenReceived = "when_received"
	// AckWhenExecuted acks after the task function returned, before its
	// result is stored.
	AckWhenExecuted = "when_executed"
	// AckWhenSaved acks after the result is stored in the result backend.
	AckWhenSaved = "when_saved"
	// AckManual leaves the ack to the task (taskiq.ContextFrom(ctx).Ack()).
	AckManual = "manual"
)

// ackTypes lists the valid ack types in the order the docs present them.
var ackTypes = []string{AckWhenReceived, AckWhenExecuted, AckWhenSaved, AckManual}

// ValidAckType reports whether s names an ack type.
func ValidAckType(s string) bool { return contains(ackTypes, s) }

// File is a decoded taskiq.hcl.
type File struct {
	// Path is the file the configuration came from, as given to Load or Parse.
	Path string
	// PluginDir is the absolute directory in which bare plugin names are
	// looked up. It is written relative to the file's directory; the default
	// is "./bin" next to the file.
	PluginDir string

	// Brokers are the `broker "name" {}` blocks in file order.
	Brokers []*PluginBlock
	// ResultBackends are the `result_backend "name" {}` blocks; v1 accepts at
	// most one.
	ResultBackends []*PluginBlock
	// Middlewares are the `middleware "name" {}` blocks in file order, which
	// is the order their hooks run in.
	Middlewares []*PluginBlock
	// ScheduleSources are the `schedule_source "name" {}` blocks: plugins
	// holding schedules (started by the scheduler only).
	ScheduleSources []*PluginBlock
	// Schedules are the `schedule "ID" {}` blocks in file order.
	Schedules []*ScheduleBlock

	Worker    Worker
	Client    Client
	Security  Security
	Telemetry Telemetry

	// files keeps the parsed sources so diagnostics can show snippets.
	files map[string]*hcl.File
	// unparsed is set when the file has syntax errors: no plugin block was
	// decoded, so which values are sensitive is unknown.
	unparsed bool
}

// PluginBlock is one broker, result_backend or middleware block.
type PluginBlock struct {
	// Kind is the role the block configures.
	Kind sdk.Kind
	// Name is the block label ("default" in `broker "default" {}`).
	Name string
	// Plugin is the plugin attribute as written.
	Plugin string
	// Path is the resolved binary: a bare name is looked up in plugin_dir; a
	// value containing "/" is a path relative to the file's directory (or an
	// absolute path).
	Path string
	// SHA256 is the optional hex pin of the binary's checksum, lower case.
	SHA256 string
	// Env holds variables passed to the plugin process. Plugins do not
	// inherit the host's whole environment, so this is how a plugin gets a
	// variable it needs.
	Env map[string]string
	// Config is the raw `config {}` body, decoded later against the schema
	// the plugin declares (DecodePluginConfig). It is an empty body whose
	// missing-item range is the block header when the block has no config.
	Config hcl.Body

	// DeclRange is the block header (`broker "default"`).
	DeclRange hcl.Range
	// PluginRange is the value of the plugin attribute.
	PluginRange hcl.Range
	// SHA256Range is the value of the sha256 attribute; it equals DeclRange
	// when there is no pin.
	SHA256Range hcl.Range

	// pluginDir is the File's PluginDir, kept for ResolvePlugin's hints.
	pluginDir string
	// ctx evaluates the config body (env(), file()).
	ctx *hcl.EvalContext
	// secrets are the decoded values of sensitive attributes and secretRanges
	// their expressions in the source; both are filled by
	// DecodePluginConfig so later diagnostics and snippets can hide them.
	secrets      []string
	secretRanges []hcl.Range
	// src is the file the block is in, to read the source of sensitive
	// expressions (nil for blocks built by hand).
	src *hcl.File
}

// Worker holds the `worker {}` block.
type Worker struct {
	// Workers is the number of child worker processes (default 2).
	Workers int
	// MaxAsyncTasks is how many tasks one worker runs at once (default 100).
	MaxAsyncTasks int
	// MaxPrefetch is how many deliveries a worker holds at once: waiting,
	// running and finishing; 0 means twice MaxAsyncTasks.
	MaxPrefetch int
	// AckType says when a delivery is acknowledged; one of the Ack*
	// constants (default when_saved).
	AckType string
	// ShutdownTimeout bounds a graceful shutdown (default 30s).
	ShutdownTimeout time.Duration
	// WaitTasksTimeout bounds the wait for in-flight tasks during shutdown;
	// 0 means ShutdownTimeout.
	WaitTasksTimeout time.Duration
	// Lease is the visibility lease requested for each delivery and extended
	// while the task runs; 0 (the default) means the broker's own lease.
	Lease time.Duration
	// Queues restricts the queues the worker listens to; empty means the
	// broker's configured queue.
	Queues []string
}

// Client holds the `client {}` block.
type Client struct {
	// DefaultBroker names the broker block kicks go through when the kicker
	// does not pick one; the default is the first broker block.
	DefaultBroker string
	// MaxMessageSize is the largest message body in bytes (default 16 MiB).
	MaxMessageSize int
}

// DefaultServiceName is telemetry.service_name's default, the service.name
// of spans (OTEL_SERVICE_NAME, when set, wins).
const DefaultServiceName = "taskiq"

// Telemetry holds the `telemetry {}` block (docs/observability.md).
type Telemetry struct {
	// MetricsAddr is where `taskiq worker` serves Prometheus' /metrics
	// (host:port); empty serves none (--metrics-addr overrides it).
	MetricsAddr string
	// Tracing turns on OpenTelemetry spans and messaging metrics, exported
	// over OTLP/HTTP as the standard OTEL_EXPORTER_OTLP_* variables say.
	Tracing bool
	// OTLPEndpoint, when set, is the collector's URL (it wins over
	// OTEL_EXPORTER_OTLP_ENDPOINT).
	OTLPEndpoint string
	// ServiceName is the service.name resource of the spans (default
	// "taskiq"; OTEL_SERVICE_NAME wins).
	ServiceName string
	// QueueStatsInterval is how often the queue gauges are refreshed from
	// the broker's inspector; 0 is 15s.
	QueueStatsInterval time.Duration
	// SampleRatio, when not nil, is the share of new traces whose spans are
	// sampled (0 to 1); a span whose parent is in a trace follows the
	// parent's decision. nil leaves it to OTEL_TRACES_SAMPLER, whose default
	// samples every span; OTEL_TRACES_SAMPLER wins over it.
	SampleRatio *float64
}

// Security holds the `security {}` block.
type Security struct {
	// AutoMTLS makes the host and each plugin authenticate each other with
	// throw-away certificates (go-plugin AutoMTLS). It costs ~13 ms of
	// plugin start-up.
	AutoMTLS bool
}

// Sources returns the parsed files by name, for WriteDiagnostics. The
// expressions of sensitive plugin attributes that DecodePluginConfig has
// seen are blanked out (to the end of their line, so a trailing comment
// goes too), so a snippet never shows a secret written in the file. A file
// with syntax errors has every attribute value blanked out: its plugin
// blocks were never decoded, so nothing tells a secret from the rest.
func (f *File) Sources() map[string]*hcl.File {
	var secret []hcl.Range
	for _, blocks := range [][]*PluginBlock{f.Brokers, f.ResultBackends, f.Middlewares, f.ScheduleSources} {
		for _, b := range blocks {
			secret = append(secret, b.secretRanges...)
		}
	}
	out := make(map[string]*hcl.File, len(f.files))
	for name, file := range f.files {
		ranges := secret
		if f.unparsed {
			ranges = append(valueRanges(name, file.Bytes), ranges...)
		}
		out[name] = redactFile(name, file, ranges)
	}
	return out
}

// Blocks returns every plugin block: brokers, then result backends, then
// middlewares, then schedule sources.
func (f *File) Blocks() []*PluginBlock {
	out := make([]*PluginBlock, 0, len(f.Brokers)+len(f.ResultBackends)+len(f.Middlewares)+len(f.ScheduleSources))
	out = append(out, f.Brokers...)
	out = append(out, f.ResultBackends...)
	out = append(out, f.Middlewares...)
	return append(out, f.ScheduleSources...)
}

// Broker returns the broker block with the given name.
func (f *File) Broker(name string) (*PluginBlock, bool) {
	for _, b := range f.Brokers {
		if b.Name == name {
			return b, true
		}
	}
	return nil, false
}

// Load reads and decodes the file at path. The returned File is non-nil
// whenever the file could be read, even with error diagnostics, so callers
// can render snippets with Sources.
func Load(path string) (*File, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read configuration file",
			Detail: fmt.Sprintf("%v. Pass the right file with --config, or start from taskiq.hcl.example.",
				err),
		}}
	}
	return Parse(src, path)
}

// Parse decodes src as if it were the file filename; relative paths in it are
// resolved against filepath.Dir(filename).
func Parse(src []byte, filename string) (*File, hcl.Diagnostics) {
	return parse(src, filename, os.LookupEnv)
}

// parse is Parse with the environment injected, so tests need not mutate
// the process environment.
func parse(src []byte, filename string, lookupEnv func(string) (string, bool)) (*File, hcl.Diagnostics) {
	parser := hclparse.NewParser()
	hf, diags := parser.ParseHCL(src, filename)
	f := &File{Path: filename, files: parser.Files()}
	if diags.HasErrors() {
		f.unparsed = true
		return f, diags
	}
	dir, err := filepath.Abs(filepath.Dir(filename))
	if err != nil {
		return f, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Cannot resolve the configuration directory",
			Detail:   fmt.Sprintf("Relative paths in %s are resolved against its directory: %v.", filename, err),
		})
	}
	d := &decoder{file: f, dir: dir, ctx: newEvalContext(dir, lookupEnv)}
	diags = append(diags, d.decode(hf.Body)...)
	sortDiagnostics(diags)
	return f, diags
}
