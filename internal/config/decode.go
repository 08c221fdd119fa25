package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// The host's schemas. Decoding with body.Content against them is what makes
// every typo an "Unsupported argument"/"Unsupported block type" error with
// HCL's own "Did you mean ...?" suggestion.
var (
	rootSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "plugin_dir"}},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: string(sdk.KindBroker), LabelNames: []string{"name"}},
			{Type: string(sdk.KindResultBackend), LabelNames: []string{"name"}},
			{Type: string(sdk.KindMiddleware), LabelNames: []string{"name"}},
			{Type: string(sdk.KindScheduleSource), LabelNames: []string{"name"}},
			{Type: "schedule", LabelNames: []string{"id"}},
			{Type: "worker"},
			{Type: "client"},
			{Type: "security"},
			{Type: "telemetry"},
		},
	}
	pluginSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "plugin", Required: true},
			{Name: "sha256"},
			{Name: "env"},
		},
		Blocks: []hcl.BlockHeaderSchema{{Type: "config"}},
	}
	workerSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "workers"},
			{Name: "max_async_tasks"},
			{Name: "max_prefetch"},
			{Name: "ack_type"},
			{Name: "shutdown_timeout"},
			{Name: "wait_tasks_timeout"},
			{Name: "lease"},
			{Name: "queues"},
		},
	}
	clientSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "default_broker"}, {Name: "max_message_size"}},
	}
	securitySchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "auto_mtls"}},
	}
	telemetrySchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "metrics_addr"}, {Name: "tracing"}, {Name: "otlp_endpoint"},
			{Name: "service_name"}, {Name: "queue_stats_interval"}, {Name: "sample_ratio"},
		},
	}
)

// decoder fills a File from the root body, collecting diagnostics.
type decoder struct {
	file  *File
	dir   string // absolute directory of the file
	ctx   *hcl.EvalContext
	diags hcl.Diagnostics
}

func (d *decoder) decode(body hcl.Body) hcl.Diagnostics {
	content, diags := body.Content(rootSchema)
	d.diags = append(d.diags, diags...)
	f := d.file

	f.PluginDir = filepath.Join(d.dir, DefaultPluginDir)
	if a := content.Attributes["plugin_dir"]; a != nil {
		var dir string
		if d.expr(a, &dir) {
			if dir == "" {
				d.errorf(a.Expr.Range(), "Invalid plugin_dir", "plugin_dir must not be empty; remove it to use %q next to this file.", DefaultPluginDir)
			} else {
				f.PluginDir = d.path(dir)
			}
		}
	}

	// Singleton blocks: remember the first of each to report duplicates.
	singles := map[string]*hcl.Block{}
	labels := map[sdk.Kind]map[string]*PluginBlock{}
	schedules := map[string]*ScheduleBlock{}
	for _, blk := range content.Blocks {
		switch blk.Type {
		case "schedule":
			d.schedule(blk, schedules)
		case "worker", "client", "security", "telemetry":
			if prev := singles[blk.Type]; prev != nil {
				d.errorf(blk.DefRange, fmt.Sprintf("Duplicate %s block", blk.Type),
					"A %s block is already defined at %s; merge the two blocks into one.", blk.Type, rangeString(prev.DefRange))
				continue
			}
			singles[blk.Type] = blk
		default:
			kind := sdk.Kind(blk.Type)
			pb := d.pluginBlock(kind, blk)
			if pb == nil {
				continue
			}
			if labels[kind] == nil {
				labels[kind] = map[string]*PluginBlock{}
			}
			if prev := labels[kind][pb.Name]; prev != nil {
				d.errorf(pb.DeclRange, fmt.Sprintf("Duplicate %s block", blk.Type),
					"A %s named %q is already defined at %s. Labels must be unique per block type; rename one of them.",
					blk.Type, pb.Name, rangeString(prev.DeclRange))
				continue
			}
			labels[kind][pb.Name] = pb
			switch kind {
			case sdk.KindBroker:
				f.Brokers = append(f.Brokers, pb)
			case sdk.KindResultBackend:
				if len(f.ResultBackends) > 0 {
					d.errorf(pb.DeclRange, "Too many result_backend blocks",
						"Only one result_backend block is supported; one is already defined at %s. Remove one of them.",
						rangeString(f.ResultBackends[0].DeclRange))
					continue
				}
				f.ResultBackends = append(f.ResultBackends, pb)
			case sdk.KindMiddleware:
				f.Middlewares = append(f.Middlewares, pb)
			case sdk.KindScheduleSource:
				f.ScheduleSources = append(f.ScheduleSources, pb)
			}
		}
	}

	d.worker(singles["worker"])
	d.client(singles["client"])
	d.security(singles["security"])
	d.telemetry(singles["telemetry"])
	return d.diags
}

// pluginBlock decodes a broker, result_backend or middleware block. It
// returns nil when the block is unusable (no label).
func (d *decoder) pluginBlock(kind sdk.Kind, blk *hcl.Block) *PluginBlock {
	name := blk.Labels[0]
	if name == "" {
		d.errorf(blk.LabelRanges[0], fmt.Sprintf("Invalid %s name", kind),
			"The label of a %s block names it and must not be empty, e.g. %s \"default\" {}.", kind, kind)
		return nil
	}
	pb := &PluginBlock{
		Kind:        kind,
		Name:        name,
		DeclRange:   blk.DefRange,
		PluginRange: blk.DefRange,
		SHA256Range: blk.DefRange,
		pluginDir:   d.file.PluginDir,
		ctx:         d.ctx,
		src:         d.file.files[blk.DefRange.Filename],
		// An empty body whose missing-item range is the block header, so
		// "missing required argument" for a plugin without config points at
		// the block rather than at nothing.
		Config: &hclsyntax.Body{SrcRange: blk.DefRange, EndRange: blk.DefRange},
	}
	content, diags := blk.Body.Content(pluginSchema)
	d.diags = append(d.diags, diags...)

	if a := content.Attributes["plugin"]; a != nil {
		pb.PluginRange = a.Expr.Range()
		if d.expr(a, &pb.Plugin) {
			if pb.Plugin == "" {
				d.errorf(a.Expr.Range(), "Invalid plugin", "plugin must name a binary in plugin_dir (e.g. \"taskiq-redis\") or be a path to one.")
			} else {
				pb.Path = d.pluginPath(pb.Plugin)
			}
		}
	}
	if a := content.Attributes["sha256"]; a != nil {
		pb.SHA256Range = a.Expr.Range()
		var sum string
		if d.expr(a, &sum) {
			sum = strings.ToLower(strings.TrimSpace(sum))
			if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 {
				d.errorf(a.Expr.Range(), "Invalid sha256",
					"sha256 must be the 64 hex digits of the binary's SHA-256, as printed by `sha256sum %s`.", pb.Plugin)
			} else {
				pb.SHA256 = sum
			}
		}
	}
	if a := content.Attributes["env"]; a != nil {
		var env map[string]string
		if d.expr(a, &env) {
			for k := range env {
				if k == "" || strings.ContainsAny(k, "=\x00") {
					d.errorf(a.Expr.Range(), "Invalid environment variable name",
						"%q cannot be an environment variable name; names must be non-empty and contain no \"=\".", k)
				}
			}
			pb.Env = env
		}
	}
	var first *hcl.Block
	for _, cb := range content.Blocks { // only "config" passes the schema
		if first != nil {
			d.errorf(cb.DefRange, "Duplicate config block",
				"A %s block takes one config block, and one is already defined at %s; merge the two.",
				kind, rangeString(first.DefRange))
			continue
		}
		first = cb
		pb.Config = cb.Body
	}
	return pb
}

// worker decodes the worker block (nil when absent) over the defaults.
func (d *decoder) worker(blk *hcl.Block) {
	w := &d.file.Worker
	*w = Worker{
		Workers:         DefaultWorkers,
		MaxAsyncTasks:   DefaultMaxAsyncTasks,
		AckType:         DefaultAckType,
		ShutdownTimeout: DefaultShutdownTimeout,
	}
	if blk == nil {
		return
	}
	content, diags := blk.Body.Content(workerSchema)
	d.diags = append(d.diags, diags...)
	attrs := content.Attributes
	d.intAttr(attrs["workers"], &w.Workers, 1, "the number of worker processes")
	d.intAttr(attrs["max_async_tasks"], &w.MaxAsyncTasks, 1, "how many tasks a worker runs at once")
	d.intAttr(attrs["max_prefetch"], &w.MaxPrefetch, 0, "0 means twice max_async_tasks")
	d.durationAttr(attrs["shutdown_timeout"], &w.ShutdownTimeout)
	d.durationAttr(attrs["wait_tasks_timeout"], &w.WaitTasksTimeout)
	reported := len(d.diags)
	d.durationAttr(attrs["lease"], &w.Lease)
	if a := attrs["lease"]; a != nil && w.Lease == 0 && len(d.diags) == reported {
		d.errorf(a.Expr.Range(), "Invalid lease", "lease must be positive: a delivery needs time to run before it is redelivered.")
	}
	if a := attrs["ack_type"]; a != nil {
		var ack string
		if d.expr(a, &ack) {
			if !contains(ackTypes, ack) {
				hint := ""
				if s := suggest(ack, ackTypes); s != "" {
					hint = fmt.Sprintf(" Did you mean %q?", s)
				}
				d.errorf(a.Expr.Range(), "Invalid ack_type",
					"%q is not an ack type; use one of %s.%s", ack, strings.Join(ackTypes, ", "), hint)
			} else {
				w.AckType = ack
			}
		}
	}
	if a := attrs["queues"]; a != nil {
		var queues []string
		if d.expr(a, &queues) {
			for _, q := range queues {
				if q == "" {
					d.errorf(a.Expr.Range(), "Invalid queues", "Queue names must not be empty.")
					break
				}
			}
			w.Queues = queues
		}
	}
}

// client decodes the client block (nil when absent) over the defaults and
// checks default_broker against the broker blocks.
func (d *decoder) client(blk *hcl.Block) {
	c := &d.file.Client
	c.MaxMessageSize = sdk.DefaultMaxMessageSize
	if len(d.file.Brokers) > 0 {
		c.DefaultBroker = d.file.Brokers[0].Name
	}
	if blk == nil {
		return
	}
	content, diags := blk.Body.Content(clientSchema)
	d.diags = append(d.diags, diags...)
	if a := content.Attributes["max_message_size"]; a != nil {
		var n int
		if d.expr(a, &n) {
			if n < 1 || n > maxMessageSizeUpperBound {
				d.errorf(a.Expr.Range(), "Invalid max_message_size",
					"max_message_size is in bytes and must be between 1 and %d; the default is %d (16 MiB).",
					maxMessageSizeUpperBound, sdk.DefaultMaxMessageSize)
			} else {
				c.MaxMessageSize = n
			}
		}
	}
	if a := content.Attributes["default_broker"]; a != nil {
		var name string
		if d.expr(a, &name) {
			if _, ok := d.file.Broker(name); ok {
				c.DefaultBroker = name
				return
			}
			names := make([]string, 0, len(d.file.Brokers))
			for _, b := range d.file.Brokers {
				names = append(names, b.Name)
			}
			detail := fmt.Sprintf("There is no broker %q in this file; define one with broker %q {}.", name, name)
			if len(names) > 0 {
				detail = fmt.Sprintf("There is no broker %q; the brokers defined are %s.", name, quoteAll(names))
				if s := suggest(name, names); s != "" {
					detail += fmt.Sprintf(" Did you mean %q?", s)
				}
			}
			d.errorf(a.Expr.Range(), "Unknown default_broker", "%s", detail)
		}
	}
}

// security decodes the security block (nil when absent).
func (d *decoder) telemetry(blk *hcl.Block) {
	t := &d.file.Telemetry
	t.ServiceName = DefaultServiceName
	if blk == nil {
		return
	}
	content, diags := blk.Body.Content(telemetrySchema)
	d.diags = append(d.diags, diags...)
	if a := content.Attributes["metrics_addr"]; a != nil {
		if d.expr(a, &t.MetricsAddr) && t.MetricsAddr != "" {
			if _, _, err := net.SplitHostPort(t.MetricsAddr); err != nil {
				d.errorf(a.Expr.Range(), "Invalid metrics_addr", "metrics_addr is host:port, e.g. \"127.0.0.1:9464\": %v.", err)
			}
		}
	}
	if a := content.Attributes["tracing"]; a != nil {
		d.expr(a, &t.Tracing)
	}
	if a := content.Attributes["otlp_endpoint"]; a != nil {
		if d.expr(a, &t.OTLPEndpoint) && t.OTLPEndpoint != "" && !strings.HasPrefix(t.OTLPEndpoint, "http://") && !strings.HasPrefix(t.OTLPEndpoint, "https://") {
			d.errorf(a.Expr.Range(), "Invalid otlp_endpoint", "otlp_endpoint is the URL of an OTLP/HTTP collector, e.g. \"http://127.0.0.1:4318\".")
		}
	}
	if a := content.Attributes["service_name"]; a != nil {
		if d.expr(a, &t.ServiceName) && t.ServiceName == "" {
			d.errorf(a.Expr.Range(), "Invalid service_name", "service_name must not be empty; remove it for %q.", DefaultServiceName)
		}
	}
	if a := content.Attributes["queue_stats_interval"]; a != nil {
		d.durationAttr(a, &t.QueueStatsInterval)
	}
	if a := content.Attributes["sample_ratio"]; a != nil {
		var r float64
		if d.expr(a, &r) {
			if r < 0 || r > 1 {
				d.errorf(a.Expr.Range(), "Invalid sample_ratio", "sample_ratio is the share of traces sampled, from 0 to 1 (0.1: one in ten); got %g.", r)
			} else {
				t.SampleRatio = &r
			}
		}
	}
}

func (d *decoder) security(blk *hcl.Block) {
	if blk == nil {
		return
	}
	content, diags := blk.Body.Content(securitySchema)
	d.diags = append(d.diags, diags...)
	if a := content.Attributes["auto_mtls"]; a != nil {
		d.expr(a, &d.file.Security.AutoMTLS)
	}
}

// expr evaluates an attribute into a Go value. Type errors are reported on
// the attribute's value in the same words hcldec uses for plugin config, so
// host and plugin attributes read alike. It reports whether decoding
// succeeded.
func (d *decoder) expr(a *hcl.Attribute, target any) bool {
	val, diags := a.Expr.Value(d.ctx)
	diags = fixFuncDiags(diags)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return false
	}
	ty, err := gocty.ImpliedType(target)
	if err != nil {
		panic(fmt.Sprintf("config: no cty type for %T: %v", target, err)) // a bug in this package
	}
	if val, err = convert.Convert(val, ty); err == nil && val.IsNull() {
		err = errors.New("a value is required, not null")
	}
	if err == nil {
		err = gocty.FromCtyValue(val, target)
	}
	if err != nil {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity:    hcl.DiagError,
			Summary:     "Incorrect attribute value type",
			Detail:      fmt.Sprintf("Inappropriate value for attribute %q: %s.", a.Name, err),
			Subject:     a.Expr.Range().Ptr(),
			Context:     a.Range.Ptr(),
			Expression:  a.Expr,
			EvalContext: d.ctx,
		})
		return false
	}
	return true
}

// intAttr decodes an optional whole number of at least lowest.
func (d *decoder) intAttr(a *hcl.Attribute, dst *int, lowest int, meaning string) {
	if a == nil {
		return
	}
	var n int
	if !d.expr(a, &n) {
		return
	}
	if n < lowest {
		d.errorf(a.Expr.Range(), "Invalid "+a.Name, "%s must be at least %d (%s).", a.Name, lowest, meaning)
		return
	}
	*dst = n
}

// durationAttr decodes an optional non-negative duration written as a Go
// duration string ("30s", "5m", "1h30m").
func (d *decoder) durationAttr(a *hcl.Attribute, dst *time.Duration) {
	if a == nil {
		return
	}
	var s string
	if !d.expr(a, &s) {
		return
	}
	v, err := parseDuration(s)
	if err != nil {
		d.errorf(a.Expr.Range(), "Invalid duration", "%s: %v.", a.Name, err)
		return
	}
	*dst = v
}

// parseDuration parses a non-negative Go duration with an error message
// that says how to write one.
func parseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; write a number with a unit, such as \"30s\", \"5m\" or \"1h30m\"", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("%q is negative; durations must be zero or more", s)
	}
	return v, nil
}

// path resolves p against the file's directory.
func (d *decoder) path(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(d.dir, p)
}

// pluginPath resolves a plugin attribute: a bare name is a binary in
// plugin_dir; anything containing a path separator is a path relative to the
// file's directory, so "./taskiq-redis" means the file's directory, not
// plugin_dir.
func (d *decoder) pluginPath(plugin string) string {
	if strings.ContainsRune(plugin, '/') || strings.ContainsRune(plugin, filepath.Separator) {
		return d.path(plugin)
	}
	return filepath.Join(d.file.PluginDir, plugin)
}

func (d *decoder) errorf(rng hcl.Range, summary, format string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	})
}

// rangeString renders the start of a range as file:line:col.
func rangeString(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func quoteAll(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// suggest returns the candidate closest to given when it is within the same
// edit distance HCL uses for its own suggestions.
func suggest(given string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if dist := editDistance(given, c); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
