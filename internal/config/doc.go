// Package config loads taskiq.hcl, the file that wires a taskiq-go host to
// its plugins.
//
// The host's own settings (plugin_dir, worker, client, security and the
// broker, result_backend and middleware blocks) are decoded strictly here:
// an unknown attribute or block is an error with HCL's "Did you mean ...?"
// suggestion, and every problem is a diagnostic carrying file:line:col.
//
// Each plugin block's `config {}` body is kept raw, because only the plugin
// knows its schema. Once the host has started the plugin and asked for its
// schema, DecodePluginConfig checks the body against it and produces the JSON
// object the plugin is configured with; PluginDiagnostics maps the errors the
// plugin returns back onto the file. ResolvePlugin checks that a block's
// binary exists and matches its sha256 pin before anything is started.
//
// Expressions may call env("NAME") or env("NAME", "default") and
// file("path"); see docs/config.md for the full reference.
package config
