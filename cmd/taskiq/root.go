package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/internal/config"
	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// errQuiet marks an error already reported to the user.
var errQuiet = errors.New("reported")

func run(args []string, stdout, stderr io.Writer) int {
	// Everything on stderr (errors, diagnostics, the host's and the plugins'
	// logs) loses URL passwords: an error quoted from a library or a plugin
	// may hold a whole URL. stdout carries task results, user data that is
	// printed as it is.
	stderr = sdk.RedactingWriter(stderr)
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		if !errors.Is(err, errQuiet) {
			fmt.Fprintln(stderr, "Error:", err)
		}
		return 1
	}
	return 0
}

type globals struct {
	logLevel string
	stdout   io.Writer
	stderr   io.Writer
}

func (g *globals) logger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "taskiq", Level: hclog.LevelFromString(g.logLevel), Output: g.stderr})
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "taskiq",
		Short:         "taskiq-go: a distributed task queue whose brokers and backends are plugins",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "warn", "log level: trace, debug, info, warn, error")
	root.AddCommand(newConfigCmd(g), newPluginsCmd(g), newVersionCmd(g))
	for _, sub := range subcommands {
		root.AddCommand(sub(g))
	}
	return root
}

// subcommands are added by the files that define them (worker.go, bench.go,
// ...) from an init function, so each command lives in one file.
var subcommands []func(*globals) *cobra.Command

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(*cobra.Command, []string) { fmt.Fprintln(g.stdout, "taskiq", version) },
	}
}

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with taskiq.hcl"}
	var (
		path    string
		verbose bool
	)
	validate := &cobra.Command{
		Use:   "validate",
		Short: "Check taskiq.hcl, including every plugin's config block against the plugin's schema",
		Long: `Check taskiq.hcl: host attributes, plugin binaries (presence and sha256 pins),
env() references, and each plugin's config block against the schema the plugin
declares. Every error is reported as file:line:col. Plugins are started only to
read their schema; nothing connects to a broker.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			diags := core.Validate(cmd.Context(), path, g.logger())
			if len(diags) > 0 {
				fmt.Fprintln(g.stderr, config.FormatDiagnostics(diags))
				if verbose {
					fmt.Fprintln(g.stderr)
					var files map[string]*hcl.File
					if f, _ := config.Load(path); f != nil {
						files = f.Sources()
					}
					_ = config.WriteDiagnostics(g.stderr, files, diags)
				}
			}
			if diags.HasErrors() {
				return errQuiet
			}
			fmt.Fprintf(g.stdout, "%s: configuration is valid\n", path)
			return nil
		},
	}
	validate.Flags().StringVarP(&path, "config", "c", "taskiq.hcl", "path to taskiq.hcl")
	validate.Flags().BoolVarP(&verbose, "verbose", "v", false, "also show each error with its source lines")
	cmd.AddCommand(validate)
	return cmd
}

func newPluginsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "plugins", Short: "Inspect plugin binaries"}
	var asJSON bool
	info := &cobra.Command{
		Use:   "info PATH",
		Short: "Print a plugin's name, version, roles, capabilities and config schema",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			c, err := sdk.Launch(ctx, sdk.LaunchConfig{Path: args[0], Logger: g.logger()})
			if err != nil {
				return err
			}
			defer func() {
				cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = c.Close(cctx)
			}()
			inf, err := c.Info(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if asJSON {
				return printInfoJSON(g.stdout, inf)
			}
			printInfo(g.stdout, inf)
			return nil
		},
	}
	info.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(info)
	return cmd
}

// defaultText renders a default for display; sensitive defaults are hidden.
func defaultText(a sdk.Attribute) string {
	switch {
	case a.Default == nil:
		return "-"
	case a.Sensitive:
		return "(sensitive)"
	}
	b, _ := json.Marshal(a.Default)
	return string(b)
}

// typeText renders an attribute's type with the constraints its schema
// declares: "number (integer, 1..5)", "string (one of "a", "b")".
func typeText(a sdk.Attribute) string {
	var parts []string
	if a.Integer {
		parts = append(parts, "integer")
	}
	if a.Min != nil || a.Max != nil {
		bound := func(p *float64) string {
			if p == nil {
				return ""
			}
			return a.BoundText(*p)
		}
		parts = append(parts, bound(a.Min)+".."+bound(a.Max))
	}
	if len(a.Allowed) > 0 {
		quoted := make([]string, len(a.Allowed))
		for i, v := range a.Allowed {
			quoted[i] = strconv.Quote(v)
		}
		parts = append(parts, "one of "+strings.Join(quoted, ", "))
	}
	if len(parts) == 0 {
		return string(a.Type)
	}
	return fmt.Sprintf("%s (%s)", a.Type, strings.Join(parts, ", "))
}

func printInfo(w io.Writer, inf sdk.Info) {
	fmt.Fprintf(w, "name:     %s\nversion:  %s\nprotocol: %d\n", inf.Name, inf.Version, inf.ProtocolVersion)
	for _, r := range inf.Roles {
		fmt.Fprintf(w, "\nrole: %s\n", r.Kind)
		caps := append([]string(nil), r.Capabilities...)
		sort.Strings(caps)
		fmt.Fprintf(w, "  capabilities: %s\n", orNone(strings.Join(caps, ", ")))
		if r.Kind == sdk.KindMiddleware {
			hooks := make([]string, len(r.Hooks))
			for i, h := range r.Hooks {
				hooks[i] = string(h)
			}
			fmt.Fprintf(w, "  hooks: %s\n", orNone(strings.Join(hooks, ", ")))
		}
		if r.MaxMessageSize > 0 {
			fmt.Fprintf(w, "  max message size: %d bytes\n", r.MaxMessageSize)
		}
		if len(r.Schema.Attributes) == 0 {
			fmt.Fprintln(w, "  config: (no attributes)")
			continue
		}
		fmt.Fprintln(w, "  config:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "    ATTRIBUTE\tTYPE\tREQUIRED\tDEFAULT\tDESCRIPTION")
		for _, a := range r.Schema.Attributes {
			req := "no"
			if a.Required {
				req = "yes"
			}
			desc := a.Description
			if a.Sensitive {
				desc += " (sensitive)"
			}
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\n", a.Name, typeText(a), req, defaultText(a), desc)
		}
		_ = tw.Flush()
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func printInfoJSON(w io.Writer, inf sdk.Info) error {
	type attr struct {
		Name        string   `json:"name"`
		Type        string   `json:"type"`
		Required    bool     `json:"required"`
		Default     any      `json:"default,omitempty"`
		Sensitive   bool     `json:"sensitive,omitempty"`
		Description string   `json:"description,omitempty"`
		Allowed     []string `json:"allowed,omitempty"`
		Integer     bool     `json:"integer,omitempty"`
		Min         *float64 `json:"min,omitempty"`
		Max         *float64 `json:"max,omitempty"`
	}
	type role struct {
		Kind           string   `json:"kind"`
		Capabilities   []string `json:"capabilities"`
		Hooks          []string `json:"hooks,omitempty"`
		MaxMessageSize int      `json:"max_message_size,omitempty"`
		Config         []attr   `json:"config"`
	}
	out := struct {
		Name     string `json:"name"`
		Version  string `json:"version"`
		Protocol int    `json:"protocol"`
		Roles    []role `json:"roles"`
	}{Name: inf.Name, Version: inf.Version, Protocol: inf.ProtocolVersion}
	for _, r := range inf.Roles {
		rr := role{Kind: string(r.Kind), Capabilities: r.Capabilities, MaxMessageSize: r.MaxMessageSize, Config: []attr{}}
		for _, h := range r.Hooks {
			rr.Hooks = append(rr.Hooks, string(h))
		}
		for _, a := range r.Schema.Attributes {
			d := a.Default
			if a.Sensitive && d != nil {
				d = "(sensitive)"
			}
			rr.Config = append(rr.Config, attr{a.Name, string(a.Type), a.Required, d, a.Sensitive, a.Description,
				a.Allowed, a.Integer, a.Min, a.Max})
		}
		out.Roles = append(out.Roles, rr)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
