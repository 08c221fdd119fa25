// Package pluginv1 is the generated code of protocol taskiq.plugin.v1, the
// gRPC protocol between the taskiq-go host and its plugin processes
// (plugin.proto beside this file; `make proto` regenerates it). Plugin
// authors do not import it: package sdk wraps it in Go interfaces.
package pluginv1
