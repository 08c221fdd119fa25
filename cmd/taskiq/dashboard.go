package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/core/dashboard"
)

func init() { subcommands = append(subcommands, newDashboardCmd) }

func newDashboardCmd(g *globals) *cobra.Command {
	var (
		f         inspectFlags
		addr      string
		prefix    string
		readOnly  bool
		token     string
		basicAuth string
	)
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the web dashboard: queues, tasks by state, task detail, dead letters, workers",
		Long: `Serve the web dashboard of the broker of taskiq.hcl. It binds to 127.0.0.1
by default; to expose it, protect it with --token (or TASKIQ_DASHBOARD_TOKEN)
or --basic-auth USER:PASSWORD (or TASKIQ_DASHBOARD_BASIC_AUTH), and consider
--read-only, which hides and refuses every action. Every action carries a
CSRF token. Nothing of taskiq.hcl is rendered.`,
		Example: `  taskiq dashboard --config taskiq.hcl --addr 127.0.0.1:8088
  TASKIQ_DASHBOARD_TOKEN=$(openssl rand -hex 16) taskiq dashboard --addr 0.0.0.0:8088 --read-only`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if token == "" {
				token = os.Getenv("TASKIQ_DASHBOARD_TOKEN")
			}
			if basicAuth == "" {
				basicAuth = os.Getenv("TASKIQ_DASHBOARD_BASIC_AUTH")
			}
			opts := dashboard.Options{Prefix: prefix, Broker: f.broker, ReadOnly: readOnly, Token: token}
			if basicAuth != "" {
				u, p, ok := strings.Cut(basicAuth, ":")
				if !ok || u == "" {
					return errors.New("--basic-auth: write it as USER:PASSWORD")
				}
				opts.BasicUser, opts.BasicPassword = u, p
			}
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return fmt.Errorf("--addr %q: %w", addr, err)
			}
			if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && token == "" && opts.BasicUser == "" {
				fmt.Fprintf(g.stderr, "warning: the dashboard listens on %s without --token or --basic-auth: anyone who reaches it can re-kick and delete messages\n", addr)
			}
			return f.withInspector(cmd, g, func(ctx context.Context, app *core.App, _ core.Inspector) error {
				h, err := dashboard.New(app, opts)
				if err != nil {
					return err
				}
				return serveDashboard(ctx, g, h, addr, prefix)
			})
		},
	}
	f.add(cmd)
	_ = cmd.Flags().MarkHidden("json")
	fl := cmd.Flags()
	fl.StringVar(&addr, "addr", "127.0.0.1:8088", "address to listen on")
	fl.StringVar(&prefix, "prefix", "", "path prefix to serve under, e.g. /taskiq")
	fl.BoolVar(&readOnly, "read-only", false, "hide and refuse every action")
	fl.StringVar(&token, "token", "", "require this token (?token= once, or Authorization: Bearer); default $TASKIQ_DASHBOARD_TOKEN")
	fl.StringVar(&basicAuth, "basic-auth", "", "require HTTP basic auth USER:PASSWORD; default $TASKIQ_DASHBOARD_BASIC_AUTH")
	return cmd
}

// serveDashboard serves h on addr under prefix until ctx ends.
func serveDashboard(ctx context.Context, g *globals, h http.Handler, addr, prefix string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(strings.TrimRight(prefix, "/")+"/", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(g.stderr, "dashboard on http://%s%s/\n", ln.Addr(), strings.TrimRight(prefix, "/"))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	<-done
	return nil
}
