package supervise

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/taskiq-go/taskiq/internal/config"
	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Host is the host as plugins see it while they start: the sdk.Host they may
// call back, told each broker's capabilities as soon as it is configured.
type Host interface {
	sdk.Host
	SetBrokerCapabilities(name string, caps []string, isDefault bool)
}

// StartAll launches and configures every plugin block of f: brokers and the
// result backend first, so middlewares can ask the host about them while
// they configure. Every problem is a diagnostic on the block. The processes
// that started are returned even when others failed: the caller stops them.
func StartAll(ctx context.Context, f *config.File, host Host, logger hclog.Logger) ([]*Proc, hcl.Diagnostics) {
	var procs []*Proc
	var diags hcl.Diagnostics
	groups := [][]*config.PluginBlock{f.Brokers, f.ResultBackends, f.Middlewares}
	for _, blocks := range groups {
		for _, b := range blocks {
			p, d := startPlugin(ctx, f, b, host, logger)
			diags = append(diags, d...)
			if p == nil {
				continue
			}
			procs = append(procs, p)
			if b.Kind == sdk.KindBroker {
				host.SetBrokerCapabilities(b.Name, p.Capabilities(), b.Name == f.Client.DefaultBroker)
			}
		}
	}
	return procs, diags
}

func launchConfig(f *config.File, b *config.PluginBlock, host sdk.Host, logger hclog.Logger) sdk.LaunchConfig {
	env := make([]string, 0, len(b.Env))
	for k, v := range b.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return sdk.LaunchConfig{
		Path:           b.Path,
		SHA256:         b.SHA256,
		Logger:         logger.Named(string(b.Kind) + "." + b.Name),
		Env:            env,
		AutoMTLS:       f.Security.AutoMTLS,
		MaxMessageSize: f.Client.MaxMessageSize,
		Host:           host,
	}
}

// Inspect checks b's binary, launches it (without configuring it), decodes
// the block's config against the role's schema and has the plugin check the
// result without connecting to anything (sdk.Client.CheckConfig), for
// taskiq config validate. A plugin built before that call existed is
// checked against its schema only. The process is stopped before Inspect
// returns.
func Inspect(ctx context.Context, f *config.File, b *config.PluginBlock, logger hclog.Logger) hcl.Diagnostics {
	c, _, raw, diags := inspect(ctx, f, b, nil, logger)
	if c == nil {
		return diags
	}
	defer stopClient(c)
	if diags.HasErrors() {
		return diags
	}
	errs, err := c.CheckConfig(ctx, b.Kind, b.Name, raw)
	switch {
	case errors.Is(err, sdk.ErrUnsupported):
		logger.Debug("the plugin cannot check its config (built before CheckConfig); its schema was checked",
			"kind", b.Kind, "name", b.Name, "plugin", b.Path)
	case err != nil:
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Plugin config check failed",
			Detail: err.Error(), Subject: b.DeclRange.Ptr(),
		})
	default:
		diags = append(diags, config.PluginDiagnostics(b, errs)...)
	}
	return diags
}

// inspect checks the binary, launches it, and decodes the block's config
// against the role's schema. The returned client is running.
func inspect(ctx context.Context, f *config.File, b *config.PluginBlock, host sdk.Host, logger hclog.Logger) (*sdk.Client, sdk.Info, []byte, hcl.Diagnostics) {
	diags := config.ResolvePlugin(b)
	if diags.HasErrors() {
		return nil, sdk.Info{}, nil, diags
	}
	lc := launchConfig(f, b, host, logger)
	// ResolvePlugin has just checked the sha256 pin: hash the binary once per
	// start. A restart (Proc keeps the pin) checks it again.
	lc.SHA256 = ""
	c, err := sdk.Launch(ctx, lc)
	if err != nil {
		return nil, sdk.Info{}, nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Plugin failed to start",
			Detail: err.Error(), Subject: b.PluginRange.Ptr(),
		})
	}
	info, err := c.Info(ctx)
	if err != nil {
		stopClient(c)
		return nil, info, nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Plugin did not describe itself",
			Detail: err.Error(), Subject: b.PluginRange.Ptr(),
		})
	}
	role, ok := info.Role(b.Kind)
	if !ok {
		stopClient(c)
		var kinds []string
		for _, r := range info.Roles {
			kinds = append(kinds, string(r.Kind))
		}
		return nil, info, nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Plugin cannot serve this block",
			Detail:  fmt.Sprintf("%s (%s) serves %v, not %s", info.Name, b.Path, kinds, b.Kind),
			Subject: b.PluginRange.Ptr(),
		})
	}
	raw, d := config.DecodePluginConfig(b, role.Schema)
	diags = append(diags, d...)
	return c, info, raw, diags
}

func startPlugin(ctx context.Context, f *config.File, b *config.PluginBlock, host sdk.Host, logger hclog.Logger) (*Proc, hcl.Diagnostics) {
	begin := time.Now()
	c, info, raw, diags := inspect(ctx, f, b, host, logger)
	if c == nil {
		return nil, diags
	}
	if diags.HasErrors() {
		stopClient(c)
		return nil, diags
	}
	p := New(b.Kind, b.Name, launchConfig(f, b, host, logger), raw, logger)
	err := p.configure(ctx, c, info, begin)
	var ce *ConfigError
	switch {
	case errors.As(err, &ce):
		return nil, append(diags, config.PluginDiagnostics(b, ce.Errors)...)
	case err != nil:
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Plugin configuration failed",
			Detail: err.Error(), Subject: b.DeclRange.Ptr(),
		})
	}
	return p, diags
}

// stopClient stops a plugin process that was started only to be inspected
// or that failed configuration: asked to shut down, then stopped.
func stopClient(c *sdk.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}
