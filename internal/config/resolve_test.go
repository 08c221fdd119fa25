package config

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// resolveSetup writes taskiq.hcl into a temp dir with the given broker
// attributes and returns the parsed broker block and the dir.
func resolveSetup(t *testing.T, attrs string) (*PluginBlock, string) {
	t.Helper()
	dir := t.TempDir()
	src := "broker \"default\" {\n" + attrs + "}\n"
	f, diags := parse([]byte(src), filepath.Join(dir, "taskiq.hcl"), fakeEnv(nil))
	require.False(t, diags.HasErrors(), FormatDiagnostics(diags))
	return f.Brokers[0], dir
}

// writeExecutable creates an executable file with content and returns its
// SHA-256.
func writeExecutable(t *testing.T, path, content string) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o755))
	sum := sha256.Sum256([]byte(content))
	return hex.EncodeToString(sum[:])
}

func TestResolvePluginMissingRepoPlugin(t *testing.T) {
	t.Parallel()
	b, dir := resolveSetup(t, "  plugin = \"taskiq-redis\"\n")
	diags := ResolvePlugin(b)
	require.Len(t, diags, 1)
	d := diags[0]
	require.Equal(t, "Plugin binary not found", d.Summary)
	want := filepath.Join(dir, "bin", "taskiq-redis")
	require.Contains(t, d.Detail, "No plugin binary at "+want)
	require.Contains(t, d.Detail, "plugin_dir "+filepath.Join(dir, "bin"))
	require.Contains(t, d.Detail, "run `make plugins` (or `make bin/taskiq-redis`)")
	require.Equal(t, b.PluginRange, *d.Subject)
	require.True(t, strings.HasPrefix(FormatDiagnostics(diags), filepath.Join(dir, "taskiq.hcl")+":2:12: Plugin binary not found; "))
}

func TestResolvePluginMissingThirdPartyPlugin(t *testing.T) {
	t.Parallel()
	b, dir := resolveSetup(t, "  plugin = \"acme-nats\"\n")
	diags := ResolvePlugin(b)
	require.Len(t, diags, 1)
	require.Equal(t, "Plugin binary not found", diags[0].Summary)
	require.Contains(t, diags[0].Detail, filepath.Join(dir, "bin", "acme-nats"))
	require.Contains(t, diags[0].Detail, "build the plugin binary into "+filepath.Join(dir, "bin"))
	require.NotContains(t, diags[0].Detail, "make")
}

func TestResolvePluginFound(t *testing.T) {
	t.Parallel()
	b, dir := resolveSetup(t, "  plugin = \"./tools/taskiq-inmemory\"\n")
	writeExecutable(t, filepath.Join(dir, "tools", "taskiq-inmemory"), "#!/bin/sh\n")
	require.Empty(t, ResolvePlugin(b))
}

func TestResolvePluginNotExecutable(t *testing.T) {
	t.Parallel()
	b, dir := resolveSetup(t, "  plugin = \"taskiq-inmemory\"\n")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "bin"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bin", "taskiq-inmemory"), []byte("x"), 0o644))
	diags := ResolvePlugin(b)
	require.Len(t, diags, 1)
	require.Equal(t, "Plugin binary is not executable", diags[0].Summary)
	require.Contains(t, diags[0].Detail, "chmod +x "+filepath.Join(dir, "bin", "taskiq-inmemory"))
}

func TestResolvePluginDirectory(t *testing.T) {
	t.Parallel()
	b, dir := resolveSetup(t, "  plugin = \"taskiq-inmemory\"\n")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "bin", "taskiq-inmemory"), 0o755))
	diags := ResolvePlugin(b)
	require.Len(t, diags, 1)
	require.Equal(t, "Plugin binary is a directory", diags[0].Summary)
	require.Contains(t, diags[0].Detail, "make plugins")
}

func TestResolvePluginChecksum(t *testing.T) {
	t.Parallel()
	const pinned = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

	t.Run("match, pin written in upper case", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		sum := writeExecutable(t, filepath.Join(dir, "bin", "taskiq-inmemory"), "#!/bin/sh\necho plugin\n")
		src := "broker \"default\" {\n  plugin = \"taskiq-inmemory\"\n  sha256 = \"" + strings.ToUpper(sum) + "\"\n}\n"
		f, diags := parse([]byte(src), filepath.Join(dir, "taskiq.hcl"), fakeEnv(nil))
		require.False(t, diags.HasErrors(), FormatDiagnostics(diags))
		require.Empty(t, ResolvePlugin(f.Brokers[0]))
	})
	t.Run("mismatch", func(t *testing.T) {
		t.Parallel()
		b, dir := resolveSetup(t, "  plugin = \"taskiq-inmemory\"\n  sha256 = \""+pinned+"\"\n")
		actual := writeExecutable(t, filepath.Join(dir, "bin", "taskiq-inmemory"), "#!/bin/sh\necho tampered\n")
		diags := ResolvePlugin(b)
		require.Len(t, diags, 1)
		d := diags[0]
		require.Equal(t, "Plugin checksum mismatch", d.Summary)
		require.Contains(t, d.Detail, "expected sha256 "+pinned)
		require.Contains(t, d.Detail, "actual "+actual)
		require.Equal(t, b.SHA256Range, *d.Subject)
		require.Equal(t, 3, d.Subject.Start.Line)
		require.Equal(t, 12, d.Subject.Start.Column)
	})
}
