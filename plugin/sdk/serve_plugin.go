package sdk

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/taskiq-go/taskiq/internal/gctune"
)

// parentPollInterval is how often a plugin checks that its host is alive.
const parentPollInterval = 500 * time.Millisecond

// Serve runs a plugin binary: call it once from main. It blocks until the
// host ends the plugin, then returns after closing the configured role.
//
// A binary run by hand, not by a taskiq-go host, prints what it is and
// exits with status 1.
//
// The plugin ignores SIGINT and SIGTERM, because the host drains it and
// then stops it (a terminal's Ctrl-C or a service manager's stop reaches
// the whole process group before the host has drained). It exits by itself
// when its host process is gone, even after kill -9 of the host.
func Serve(p Plugin) {
	if os.Getenv(MagicCookieKey) != MagicCookieValue {
		name := p.Name
		if name == "" {
			name = filepath.Base(os.Args[0])
		}
		fmt.Fprintf(os.Stderr, "%s: this is a taskiq-go plugin; point a broker/result_backend/middleware block of taskiq.hcl at it\n", name)
		os.Exit(1)
	}
	gctune.Apply()

	// The logger must exist before plugin.Serve: Serve replaces os.Stderr,
	// and only this original stderr reaches the host's logger.
	logger := hclog.New(&hclog.LoggerOptions{
		Output:     os.Stderr,
		JSONFormat: true,
		Level:      logLevelFromEnv(),
	})
	maxSize, err := maxMessageSizeFromEnv()
	if err != nil {
		logger.Warn("ignoring "+EnvMaxMessageSize, "error", err, "using", DefaultMaxMessageSize)
	}
	srv := newPluginServer(p, logger, maxSize)
	stopProfile := startCPUProfile(logger)
	defer stopProfile()

	ignoreStopSignals(logger)
	go watchParent(context.Background(), parentPollInterval, os.Getppid, func() {
		logger.Warn("the host process is gone; shutting down")
		ctx, cancel := context.WithTimeout(context.Background(), defaultShutdownTimeout)
		defer cancel()
		if err := srv.shutdown(ctx); err != nil {
			logger.Error("closing the role failed", "error", err)
		}
		stopProfile()
		os.Exit(0)
	})

	// A socket made under the inherited umask may be open to every local
	// user (umask 000 gives srwxrwxrwx): make it 0600, and give the plugin
	// its umask back as soon as the socket exists.
	restoreUmask := sync.OnceFunc(privateUmask())
	defer restoreUmask()
	limit := grpcLimit(maxSize)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  handshake(),
		VersionedPlugins: pluginSets(srv),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			restoreUmask() // the listener exists by now
			// Stream workers reuse the goroutines that run calls: a new one
			// per call grew its stack through the role's code every time
			// (8-12% of a plugin's CPU at 1k tasks/s). Long calls (the
			// delivery and result streams) get goroutines of their own
			// when every worker is busy.
			opts = append(opts, grpc.MaxRecvMsgSize(limit), grpc.MaxSendMsgSize(limit),
				grpc.NumStreamWorkers(uint32(max(4, runtime.NumCPU()))))
			opts = append(opts, serverFlowOptions()...)
			return grpc.NewServer(opts...)
		},
		Logger: logger,
	})

	// The host stopped the gRPC server; release what the role holds.
	ctx, cancel := context.WithTimeout(context.Background(), defaultShutdownTimeout)
	defer cancel()
	if err := srv.shutdown(ctx); err != nil {
		logger.Error("closing the role failed", "error", err)
	}
}

// startCPUProfile starts profiling when EnvCPUProfile is set and returns
// the function that writes the profile out (safe to call more than once).
func startCPUProfile(logger hclog.Logger) func() {
	path := os.Getenv(EnvCPUProfile)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		logger.Warn("cannot write the CPU profile", "path", path, "error", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		logger.Warn("cannot start the CPU profile", "error", err)
		f.Close()
		return func() {}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			f.Close()
		})
	}
}

func logLevelFromEnv() hclog.Level {
	lvl := hclog.LevelFromString(os.Getenv(EnvLogLevel))
	if lvl == hclog.NoLevel {
		return hclog.Info
	}
	return lvl
}

func maxMessageSizeFromEnv() (int, error) {
	v := os.Getenv(EnvMaxMessageSize)
	if v == "" {
		return DefaultMaxMessageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return DefaultMaxMessageSize, fmt.Errorf("%q is not a positive number of bytes", v)
	}
	return n, nil
}

// ignoreStopSignals keeps SIGINT and SIGTERM from killing the plugin before
// its host has drained it, and turns a write to a vanished host's stderr
// into an error instead of a SIGPIPE death, so the shutdown path still runs.
func ignoreStopSignals(logger hclog.Logger) {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	go func() {
		for sig := range ch {
			logger.Debug("ignoring signal; the host stops this plugin", "signal", sig.String())
		}
	}()
}

// watchParent calls gone once the parent process id differs from the one at
// start: the host died and the plugin was re-parented.
func watchParent(ctx context.Context, interval time.Duration, getppid func() int, gone func()) {
	start := getppid()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if getppid() != start {
				gone()
				return
			}
		}
	}
}
