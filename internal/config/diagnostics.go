package config

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// diagnosticWidth is where WriteDiagnostics wraps details; terminals are
// rarely narrower.
const diagnosticWidth = 100

// FormatDiagnostics renders diagnostics one per line as
// "file:line:col: summary; detail" (warnings get "warning: " after the
// position), the compact form for CLI output and logs. A diagnostic without
// a range starts with its summary. URL passwords in the text are replaced
// by "xxxxx" (sdk.RedactURLs), whoever wrote the message.
func FormatDiagnostics(diags hcl.Diagnostics) string {
	lines := make([]string, 0, len(diags))
	for _, d := range diags {
		var sb strings.Builder
		if d.Subject != nil {
			sb.WriteString(rangeString(*d.Subject))
			sb.WriteString(": ")
		}
		if d.Severity == hcl.DiagWarning {
			sb.WriteString("warning: ")
		}
		sb.WriteString(d.Summary)
		if detail := strings.Join(strings.Fields(d.Detail), " "); detail != "" {
			sb.WriteString("; ")
			sb.WriteString(detail)
		}
		lines = append(lines, sdk.RedactURLs(sb.String()))
	}
	return strings.Join(lines, "\n")
}

// WriteDiagnostics writes diagnostics with source snippets, in HCL's text
// format. Pass File.Sources() as files; a diagnostic on a file not in files
// is written without a snippet. Snippets never show a sensitive value: the
// diagnostics of a plugin block carry the source ranges of its sensitive
// attributes (DecodePluginConfig, PluginDiagnostics), which are blanked out
// of every snippet, so a File loaded again for its sources hides them too.
// URL passwords are redacted from every line written (sdk.RedactURLs).
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) error {
	var secret []hcl.Range
	for _, d := range diags {
		secret = append(secret, secretRangesOf(d)...)
	}
	if len(secret) > 0 {
		redacted := make(map[string]*hcl.File, len(files))
		for name, file := range files {
			redacted[name] = redactFile(name, file, secret)
		}
		files = redacted
	}
	if err := hcl.NewDiagnosticTextWriter(sdk.RedactingWriter(w), files, diagnosticWidth, false).WriteDiagnostics(diags); err != nil {
		return fmt.Errorf("write diagnostics: %w", err)
	}
	return nil
}

// secretExtra is the Extra of a diagnostic about a plugin block: the source
// ranges of the block's sensitive values, for WriteDiagnostics. It wraps the
// Extra the diagnostic had, as HCL's DiagnosticExtraUnwrapper asks.
type secretExtra struct {
	ranges  []hcl.Range
	wrapped any
}

func (e *secretExtra) UnwrapDiagnosticExtra() any { return e.wrapped }

// markSecrets attaches ranges to every diagnostic of diags.
func markSecrets(diags hcl.Diagnostics, ranges []hcl.Range) {
	if len(ranges) == 0 {
		return
	}
	for _, d := range diags {
		d.Extra = &secretExtra{ranges: ranges, wrapped: d.Extra}
	}
}

func secretRangesOf(d *hcl.Diagnostic) []hcl.Range {
	var out []hcl.Range
	for extra := d.Extra; extra != nil; {
		if e, ok := extra.(*secretExtra); ok {
			out = append(out, e.ranges...)
		}
		u, ok := extra.(hcl.DiagnosticExtraUnwrapper)
		if !ok {
			break
		}
		extra = u.UnwrapDiagnosticExtra()
	}
	return out
}

// redactFile returns file with the bytes of the given ranges (those in this
// file) replaced by '*', keeping every byte offset, line and column valid.
func redactFile(name string, file *hcl.File, ranges []hcl.Range) *hcl.File {
	var src []byte
	for _, r := range ranges {
		if r.Filename != name || r.Start.Byte < 0 || r.End.Byte > len(file.Bytes) || r.Start.Byte >= r.End.Byte {
			continue
		}
		if src == nil {
			src = append([]byte(nil), file.Bytes...)
		}
		for i := r.Start.Byte; i < r.End.Byte; i++ {
			if src[i] != '\n' {
				src[i] = '*'
			}
		}
	}
	if src == nil {
		return file
	}
	return &hcl.File{Body: file.Body, Bytes: src, Nav: file.Nav}
}

// toLineEnd extends r to the end of its last line in src, so blanking it
// takes a trailing comment along (a commented-out old password, say).
func toLineEnd(r hcl.Range, src []byte) hcl.Range {
	if r.End.Byte < 0 || r.End.Byte > len(src) {
		return r
	}
	n := bytes.IndexByte(src[r.End.Byte:], '\n')
	if n < 0 {
		n = len(src) - r.End.Byte
	}
	r.End.Byte += n
	r.End.Column += n
	return r
}

// valueRanges lists the tokens of every attribute value in src (what
// follows "=" up to the end of the attribute, nested brackets, strings and
// heredocs included), for snippets of a file that did not parse. It works on
// HCL's tokens, which exist even when the syntax is broken; a string left
// open runs to the end of the file, and so does the blanking.
func valueRanges(name string, src []byte) []hcl.Range {
	toks, _ := hclsyntax.LexConfig(src, name, hcl.InitialPos)
	var out []hcl.Range
	inValue, depth := false, 0
	for _, t := range toks {
		switch t.Type {
		case hclsyntax.TokenOBrace, hclsyntax.TokenOBrack, hclsyntax.TokenOParen, hclsyntax.TokenOQuote,
			hclsyntax.TokenOHeredoc, hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl:
			if inValue {
				depth++
			}
		case hclsyntax.TokenCBrace, hclsyntax.TokenCBrack, hclsyntax.TokenCParen, hclsyntax.TokenCQuote,
			hclsyntax.TokenCHeredoc, hclsyntax.TokenTemplateSeqEnd:
			if inValue && depth > 0 {
				depth--
			}
		case hclsyntax.TokenEqual:
			inValue = true
		case hclsyntax.TokenNewline, hclsyntax.TokenEOF:
			if depth == 0 {
				inValue = false
			}
		case hclsyntax.TokenComma, hclsyntax.TokenColon:
		default:
			if inValue {
				out = append(out, t.Range)
			}
			if t.Type == hclsyntax.TokenComment && depth == 0 && bytes.HasSuffix(t.Bytes, []byte("\n")) {
				inValue = false // a line comment holds the newline that ends the attribute
			}
		}
	}
	return out
}

// quoted matches a double-quoted string in a diagnostic's text.
var quoted = regexp.MustCompile(`"((?:[^"\\]|\\.)+)"`)

// scrubQuoted replaces, in s, every quoted string that occurs in one of the
// sources (the text of sensitive expressions): HCL quotes pieces of an
// expression it rejects ("There is no function named ..."), and in a
// sensitive value such a piece is part of the secret.
func scrubQuoted(s string, sources [][]byte) string {
	return quoted.ReplaceAllStringFunc(s, func(q string) string {
		inner := []byte(q[1 : len(q)-1])
		for _, src := range sources {
			if bytes.Contains(src, inner) {
				return `"(sensitive)"`
			}
		}
		return q
	})
}

// sortDiagnostics orders diagnostics by position (those without one first),
// because HCL reports unsupported arguments in map order and a user reading
// the output top to bottom expects file order.
func sortDiagnostics(diags hcl.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
}
