package config

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// diagnosticWidth is where WriteDiagnostics wraps details; terminals are
// rarely narrower.
const diagnosticWidth = 100

// FormatDiagnostics renders diagnostics one per line as
// "file:line:col: summary; detail" (warnings get "warning: " after the
// position), the compact form for CLI output and logs. A diagnostic without
// a range starts with its summary.
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
		lines = append(lines, sb.String())
	}
	return strings.Join(lines, "\n")
}

// WriteDiagnostics writes diagnostics with source snippets, in HCL's text
// format. Pass File.Sources() as files so snippets hide sensitive values; a
// diagnostic on a file not in files is written without a snippet.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) error {
	if err := hcl.NewDiagnosticTextWriter(w, files, diagnosticWidth, false).WriteDiagnostics(diags); err != nil {
		return fmt.Errorf("write diagnostics: %w", err)
	}
	return nil
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
