package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/taskiq-go/taskiq/internal/execfile"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// repoPlugins are the plugins built by this repository's Makefile; a missing
// one gets a `make` hint instead of a generic one.
var repoPlugins = []string{"taskiq-inmemory", "taskiq-redis", "taskiq-retry-middleware"}

// DecodePluginConfig decodes b's config body against the schema its plugin
// declared and returns the JSON object the plugin is configured with, with
// defaults applied (by sdk.Schema.Prepare, as in the plugin process) and
// absent optional attributes without one left out.
//
// Unknown attributes get HCL's "Unsupported argument ... Did you mean ...?",
// wrong types and missing required attributes get HCL's diagnostics too, and
// a duration that time.ParseDuration rejects is reported on its value. The
// values of sensitive attributes never appear in the diagnostics, and are
// remembered on b so PluginDiagnostics and File.Sources hide them as well;
// so call it before those, and not concurrently for the same block.
func DecodePluginConfig(b *PluginBlock, schema sdk.Schema) (json.RawMessage, hcl.Diagnostics) {
	spec, diags := objectSpec(b, schema)
	if diags.HasErrors() {
		return nil, diags
	}
	body := b.Config
	if body == nil {
		body = &hclsyntax.Body{SrcRange: b.DeclRange, EndRange: b.DeclRange}
	}
	ctx := b.ctx
	if ctx == nil {
		dir := filepath.Dir(b.DeclRange.Filename)
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		ctx = newEvalContext(dir, os.LookupEnv)
	}

	val, diags := hcldec.Decode(body, spec, ctx)
	diags = fixFuncDiags(diags)
	rememberSecrets(b, body, schema, val)
	diags = scrubDiags(b, diags)
	if diags.HasErrors() {
		return nil, diags
	}

	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	for _, a := range schema.Attributes {
		v := val.GetAttr(a.Name)
		if v.IsNull() {
			continue
		}
		enc, err := ctyjson.Marshal(v, v.Type())
		if err != nil {
			return nil, append(diags, pluginBug(b, fmt.Sprintf("attribute %q cannot be encoded: %v", a.Name, err)))
		}
		key, _ := json.Marshal(a.Name)
		if !first {
			buf.WriteByte(',')
		}
		first = false
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(enc)
	}
	buf.WriteByte('}')
	raw, err := schema.Prepare(buf.Bytes())
	if err != nil {
		return nil, append(diags, PluginDiagnostics(b, sdk.ConfigErrors(err))...)
	}
	return raw, diags
}

// objectSpec turns a plugin schema into an hcldec spec. A malformed schema is
// the plugin's bug, reported on the block so the user knows whom to ask.
func objectSpec(b *PluginBlock, schema sdk.Schema) (hcldec.ObjectSpec, hcl.Diagnostics) {
	spec := hcldec.ObjectSpec{}
	var diags hcl.Diagnostics
	for _, a := range schema.Attributes {
		if !hclsyntax.ValidIdentifier(a.Name) {
			diags = append(diags, pluginBug(b, fmt.Sprintf("attribute name %q is not a valid HCL identifier", a.Name)))
			continue
		}
		if _, dup := spec[a.Name]; dup {
			diags = append(diags, pluginBug(b, fmt.Sprintf("attribute %q is declared twice", a.Name)))
			continue
		}
		ty, ok := ctyType(a.Type)
		if !ok {
			diags = append(diags, pluginBug(b, fmt.Sprintf("attribute %q has unknown type %q", a.Name, a.Type)))
			continue
		}
		var s hcldec.Spec = &hcldec.AttrSpec{Name: a.Name, Type: ty, Required: a.Required}
		if a.Type == sdk.TypeDuration {
			s = &hcldec.ValidateSpec{Wrapped: s, Func: durationValidator(a)}
		}
		if len(a.Allowed) > 0 || a.Integer || a.Min != nil || a.Max != nil {
			s = &hcldec.ValidateSpec{Wrapped: s, Func: schemaValidator(a)}
		}
		// The defaults are applied by sdk.Schema.Prepare, the same code the
		// plugin process runs: here they are only checked, so that a broken
		// one is reported as the plugin's bug on the block.
		if a.Default != nil && !a.Required {
			if _, err := defaultValue(a, ty); err != nil {
				diags = append(diags, pluginBug(b, fmt.Sprintf("the default of attribute %q is invalid: %v", a.Name, err)))
				continue
			}
		}
		spec[a.Name] = s
	}
	return spec, diags
}

// ctyType maps an SDK attribute type to the HCL value type it is decoded as.
// Durations are strings checked by durationValidator.
func ctyType(t sdk.AttrType) (cty.Type, bool) {
	switch t {
	case sdk.TypeString, sdk.TypeDuration:
		return cty.String, true
	case sdk.TypeNumber:
		return cty.Number, true
	case sdk.TypeBool:
		return cty.Bool, true
	case sdk.TypeStringList:
		return cty.List(cty.String), true
	case sdk.TypeStringMap:
		return cty.Map(cty.String), true
	}
	return cty.NilType, false
}

// defaultValue converts a schema default to a value of type ty. Defaults
// arrive either as Go values (in-process plugins) or decoded from JSON (over
// the wire); sdk.Attribute.DefaultJSON makes JSON of both and checks it as
// a value of the attribute.
func defaultValue(a sdk.Attribute, ty cty.Type) (cty.Value, error) {
	raw, err := a.DefaultJSON()
	if err != nil {
		return cty.NilVal, err
	}
	v, err := ctyjson.Unmarshal(raw, ty)
	if err != nil {
		return cty.NilVal, fmt.Errorf("%s is not a %s", raw, a.Type)
	}
	return v, nil
}

// durationValidator checks a duration attribute with time.ParseDuration; the
// diagnostic lands on the attribute's value (ValidateSpec fills in Subject).
func durationValidator(a sdk.Attribute) func(cty.Value) hcl.Diagnostics {
	return func(v cty.Value) hcl.Diagnostics {
		if v.IsNull() || !v.IsKnown() {
			return nil
		}
		if _, err := parseDuration(v.AsString()); err != nil {
			detail := fmt.Sprintf("%s: %v.", a.Name, err)
			if a.Sensitive {
				detail = fmt.Sprintf("%s is not a valid non-negative duration; write a number with a unit, such as \"30s\", \"5m\" or \"1h30m\".", a.Name)
			}
			return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid duration", Detail: detail}}
		}
		return nil
	}
}

// schemaValidator checks a value against the attribute's Allowed, Integer,
// Min and Max with sdk.Attribute.Check, the check the plugin process runs
// too; the diagnostic lands on the value. A sensitive value is not quoted.
func schemaValidator(a sdk.Attribute) func(cty.Value) hcl.Diagnostics {
	return func(v cty.Value) hcl.Diagnostics {
		if v.IsNull() || !v.IsWhollyKnown() {
			return nil
		}
		enc, err := ctyjson.Marshal(v, v.Type())
		if err != nil {
			return nil // not a value of the attribute's type: HCL reports that
		}
		if err := a.Check(enc); err != nil {
			detail := fmt.Sprintf("%s %v.", a.Name, err)
			if a.Sensitive {
				detail = fmt.Sprintf("%s is not a value the plugin's schema allows.", a.Name)
			}
			return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid value", Detail: detail}}
		}
		return nil
	}
}

// rememberSecrets records, for the sensitive attributes of the schema, their
// decoded string values (to scrub from messages) and the source ranges of
// values written literally in the file, to the end of their line (to blank
// out of snippets). A bare function call such as env("X") is left visible:
// the secret is not in it. A value that failed to decode (a list where a
// string belongs, a broken template) is remembered all the same: it is on
// the very line the error points at.
func rememberSecrets(b *PluginBlock, body hcl.Body, schema sdk.Schema, val cty.Value) {
	b.secrets, b.secretRanges = nil, nil
	for _, a := range schema.Attributes {
		if !a.Sensitive {
			continue
		}
		content, _, _ := body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: a.Name}}})
		if attr := content.Attributes[a.Name]; attr != nil {
			if _, isCall := attr.Expr.(*hclsyntax.FunctionCallExpr); !isCall {
				r := attr.Expr.Range()
				if b.src != nil {
					r = toLineEnd(r, b.src.Bytes)
				}
				b.secretRanges = append(b.secretRanges, r)
			}
		}
		if val.IsNull() || !val.IsKnown() || !val.Type().IsObjectType() || !val.Type().HasAttribute(a.Name) {
			continue
		}
		b.secrets = append(b.secrets, stringsIn(val.GetAttr(a.Name))...)
	}
}

// stringsIn lists the non-empty strings in a string, list or map value.
func stringsIn(v cty.Value) []string {
	if v.IsNull() || !v.IsKnown() {
		return nil
	}
	switch {
	case v.Type() == cty.String:
		if s := v.AsString(); s != "" {
			return []string{s}
		}
	case v.CanIterateElements():
		var out []string
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			out = append(out, stringsIn(e)...)
		}
		return out
	}
	return nil
}

// scrubDiags hides b's sensitive values in diags: the decoded values
// anywhere in the text, quoted pieces of a sensitive expression in the
// diagnostics on it, and (through the diagnostics' Extra) the expressions in
// snippets.
func scrubDiags(b *PluginBlock, diags hcl.Diagnostics) hcl.Diagnostics {
	for _, d := range diags {
		d.Summary = scrub(d.Summary, b.secrets)
		d.Detail = scrub(d.Detail, b.secrets)
		if sources := b.secretSources(d.Subject); len(sources) > 0 {
			d.Summary = scrubQuoted(d.Summary, sources)
			d.Detail = scrubQuoted(d.Detail, sources)
		}
	}
	markSecrets(diags, b.secretRanges)
	return diags
}

// secretSources returns the source text of b's sensitive expressions that
// subject overlaps.
func (b *PluginBlock) secretSources(subject *hcl.Range) [][]byte {
	if subject == nil || b.src == nil {
		return nil
	}
	var out [][]byte
	for _, r := range b.secretRanges {
		if r.Filename == subject.Filename && r.Overlaps(*subject) && r.End.Byte <= len(b.src.Bytes) {
			out = append(out, b.src.Bytes[r.Start.Byte:r.End.Byte])
		}
	}
	return out
}

// scrub replaces every secret in s, and the password of every URL in it.
func scrub(s string, secrets []string) string {
	for _, secret := range secrets {
		s = strings.ReplaceAll(s, secret, "(sensitive)")
	}
	return sdk.RedactURLs(s)
}

// pluginBug reports a malformed schema: the user cannot fix it in taskiq.hcl.
func pluginBug(b *PluginBlock, problem string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid plugin schema",
		Detail: fmt.Sprintf("The plugin %q of %s %q declares a broken config schema: %s. This is a bug in the plugin; report it to its author.",
			b.Plugin, b.Kind, b.Name, problem),
		Subject: b.DeclRange.Ptr(),
	}
}

// PluginDiagnostics turns the errors a plugin returned from Configure into
// diagnostics on the offending attribute's value in b's config body, or on the
// block header when the error names no attribute or one not written in the
// file (its default was used). A path such as "tls.ca" points at its first
// segment. Values of sensitive attributes that DecodePluginConfig saw are
// replaced by "(sensitive)" in the messages, and URL passwords by "xxxxx":
// a plugin's message is text from another process, and it may quote a
// library's error that holds the whole URL.
func PluginDiagnostics(b *PluginBlock, errs []*sdk.ConfigError) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, e := range errs {
		if e == nil {
			continue
		}
		msg := scrub(e.Message, b.secrets)
		d := &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid plugin configuration",
			Subject:  b.DeclRange.Ptr(),
		}
		who := fmt.Sprintf("The %s plugin %q (%s %q)", b.Kind, b.Plugin, b.Kind, b.Name)
		if e.Attribute == "" {
			d.Detail = fmt.Sprintf("%s rejected its configuration: %s", who, msg)
			diags = append(diags, d)
			continue
		}
		d.Detail = fmt.Sprintf("%s rejected %q: %s", who, e.Attribute, msg)
		if a := findAttribute(b.Config, e.Attribute); a != nil {
			d.Subject = a.Expr.Range().Ptr()
			d.Context = a.Range.Ptr()
		} else {
			d.Detail += fmt.Sprintf(" (%q is not set in the config block, so the plugin's default was used; set it there.)",
				rootName(e.Attribute))
		}
		diags = append(diags, d)
	}
	markSecrets(diags, b.secretRanges)
	return diags
}

// findAttribute returns the attribute of body named by the first segment of
// path ("tls" for "tls.ca" or "tls[0]"), or nil.
func findAttribute(body hcl.Body, path string) *hcl.Attribute {
	if body == nil {
		return nil
	}
	name := rootName(path)
	if !hclsyntax.ValidIdentifier(name) {
		return nil
	}
	content, _, _ := body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: name}}})
	return content.Attributes[name]
}

func rootName(path string) string {
	if i := strings.IndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return path
}

// ResolvePlugin checks that b's binary exists, is an executable file and,
// when b pins a SHA-256, that the file matches it. It reads the whole binary
// to hash it, so call it once per block at start-up.
func ResolvePlugin(b *PluginBlock) hcl.Diagnostics {
	if b.Path == "" {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Plugin binary not found",
			Detail:   fmt.Sprintf("%s %q has no usable plugin attribute; set plugin to a binary name in plugin_dir or to a path.", b.Kind, b.Name),
			Subject:  b.PluginRange.Ptr(),
		}}
	}
	pluginDir := b.pluginDir
	if pluginDir == "" {
		pluginDir = filepath.Dir(b.Path)
	}
	switch err := execfile.Check(b.Path); {
	case execfile.IsNotExist(err):
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Plugin binary not found",
			Detail: fmt.Sprintf("No plugin binary at %s (plugin %q, plugin_dir %s); %s.",
				b.Path, b.Plugin, pluginDir, buildHint(b.Path)),
			Subject: b.PluginRange.Ptr(),
		}}
	case errors.Is(err, execfile.ErrIsDir):
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Plugin binary is a directory",
			Detail:   fmt.Sprintf("%s is a directory; plugin must name the binary itself. %s.", b.Path, capitalize(buildHint(b.Path))),
			Subject:  b.PluginRange.Ptr(),
		}}
	case errors.Is(err, execfile.ErrNotExecutable):
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Plugin binary is not executable",
			Detail:   fmt.Sprintf("%s is not executable; run `chmod +x %s`.", b.Path, b.Path),
			Subject:  b.PluginRange.Ptr(),
		}}
	case err != nil:
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot access plugin binary",
			Detail:   fmt.Sprintf("%v. Check the permissions of %s.", err, b.Path),
			Subject:  b.PluginRange.Ptr(),
		}}
	}
	if b.SHA256 == "" {
		return nil
	}
	actual, err := execfile.SHA256(b.Path)
	if err != nil {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read plugin binary",
			Detail:   fmt.Sprintf("Hashing %s to check its sha256 pin failed: %v.", b.Path, err),
			Subject:  b.SHA256Range.Ptr(),
		}}
	}
	if !strings.EqualFold(actual, b.SHA256) {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Plugin checksum mismatch",
			Detail: fmt.Sprintf("%s: expected sha256 %s, actual %s. The binary changed since it was pinned; if you rebuilt it on purpose, update sha256, otherwise do not run it.",
				b.Path, strings.ToLower(b.SHA256), actual),
			Subject: b.SHA256Range.Ptr(),
		}}
	}
	return nil
}

// buildHint says how to produce a missing binary.
func buildHint(path string) string {
	name := filepath.Base(path)
	if contains(repoPlugins, name) {
		return fmt.Sprintf("run `make plugins` (or `make bin/%s`) to build it", name)
	}
	return fmt.Sprintf("build the plugin binary into %s", filepath.Dir(path))
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
