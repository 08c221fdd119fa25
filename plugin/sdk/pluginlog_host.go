package sdk

import (
	"math"

	"github.com/hashicorp/go-hclog"
)

// pluginLogger is the logger go-plugin writes a plugin's log lines to. A
// line crosses as JSON (Serve's logger) and go-plugin re-logs it; pluginLogger
// undoes what that hop does to it:
//
//   - JSON numbers arrive as float64, which hclog prints as 1.6777216e+07: a
//     whole number is logged as an integer again (16777216);
//   - go-plugin appends the plugin's own timestamp as a "timestamp" pair,
//     so every line showed two: the host's line has its own, and the pair
//     is dropped.
//
// go-plugin's own messages pass through it too; they carry neither.
type pluginLogger struct {
	hclog.Logger
}

// fixArgs rewrites the key/value pairs of one plugin log line in place.
func fixArgs(args []any) []any {
	if n := len(args); n >= 2 && n%2 == 0 {
		if k, ok := args[n-2].(string); ok && k == "timestamp" {
			if _, ok := args[n-1].(string); ok {
				args = args[:n-2]
			}
		}
	}
	for i := 1; i < len(args); i += 2 {
		if f, ok := args[i].(float64); ok && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			args[i] = int64(f)
		}
	}
	return args
}

func (l pluginLogger) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(level, msg, fixArgs(args)...)
}

func (l pluginLogger) Trace(msg string, args ...any) { l.Logger.Trace(msg, fixArgs(args)...) }
func (l pluginLogger) Debug(msg string, args ...any) { l.Logger.Debug(msg, fixArgs(args)...) }
func (l pluginLogger) Info(msg string, args ...any)  { l.Logger.Info(msg, fixArgs(args)...) }
func (l pluginLogger) Warn(msg string, args ...any)  { l.Logger.Warn(msg, fixArgs(args)...) }
func (l pluginLogger) Error(msg string, args ...any) { l.Logger.Error(msg, fixArgs(args)...) }

func (l pluginLogger) With(args ...any) hclog.Logger {
	return pluginLogger{l.Logger.With(args...)}
}

func (l pluginLogger) Named(name string) hclog.Logger {
	return pluginLogger{l.Logger.Named(name)}
}

func (l pluginLogger) ResetNamed(name string) hclog.Logger {
	return pluginLogger{l.Logger.ResetNamed(name)}
}

// Interface guards
var _ hclog.Logger = pluginLogger{}
