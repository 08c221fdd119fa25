// Package execlog is the execution log of the chaos runs: the chaos task
// module appends one line when a task starts and one when it ends, and the
// harness reads the file back to count executions per task id.
//
// The file lives in the task module's temporary directory ($TMPDIR): task
// modules inherit only PATH, HOME, TMPDIR, LANG and TZ from the worker, so
// TMPDIR is the one channel the harness has to tell every module process of
// one run where to write. Each line is a single write(2) on a file opened
// with O_APPEND, so lines from concurrent processes never interleave.
package execlog

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// FileName is the log's name inside $TMPDIR.
const FileName = "chaos-executions.log"

// Path is where a process whose TMPDIR is the run directory writes the log.
func Path() string { return filepath.Join(os.TempDir(), FileName) }

// Kind says whether a line marks the start or the end of an execution.
type Kind byte

// Line kinds.
const (
	Start Kind = 'S'
	End   Kind = 'E'
)

// Line is one record: task id, the worker child the module ran under, the
// module process, the time, and for End lines the outcome ("ok" or "err").
type Line struct {
	Kind      Kind
	TaskID    string
	WorkerPID int
	ModulePID int
	At        time.Time
	Outcome   string
}

// Writer appends lines to the log. It is safe for concurrent use.
type Writer struct {
	f         *os.File
	workerPID int
	modulePID int
}

// Open opens (creating) the log at path for appending. The worker pid is
// the parent process: a task module is a child of its worker.
func Open(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open the execution log %s (is TMPDIR a writable directory?): %w", path, err)
	}
	return &Writer{f: f, workerPID: os.Getppid(), modulePID: os.Getpid()}, nil
}

// Start records that taskID starts now.
func (w *Writer) Start(taskID string) error {
	return w.write(Line{Kind: Start, TaskID: taskID, At: time.Now()})
}

// End records that taskID ended now with outcome ("ok" or "err").
func (w *Writer) End(taskID, outcome string) error {
	return w.write(Line{Kind: End, TaskID: taskID, At: time.Now(), Outcome: outcome})
}

func (w *Writer) write(l Line) error {
	l.WorkerPID, l.ModulePID = w.workerPID, w.modulePID
	b := Format(l)
	// One write call per line: O_APPEND makes it atomic with respect to the
	// other module processes appending to the same file.
	_, err := w.f.Write(b)
	return err
}

// Format renders l as one log line, newline included.
func Format(l Line) []byte {
	s := fmt.Sprintf("%c %s %d %d %d", l.Kind, l.TaskID, l.WorkerPID, l.ModulePID, l.At.UnixNano())
	if l.Kind == End {
		s += " " + l.Outcome
	}
	return []byte(s + "\n")
}

// Parse reads a log. A torn last line (a process killed mid-write cannot
// produce one with O_APPEND, but a full disk can) is reported as an error
// with its line number.
func Parse(r io.Reader) ([]Line, error) {
	var out []Line
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		text := sc.Text()
		if text == "" {
			continue
		}
		l, err := parseLine(text)
		if err != nil {
			return out, fmt.Errorf("execution log line %d: %w", n, err)
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

func parseLine(s string) (Line, error) {
	f := strings.Fields(s)
	if len(f) < 5 || len(f[0]) != 1 || (f[0][0] != byte(Start) && f[0][0] != byte(End)) {
		return Line{}, fmt.Errorf("malformed line %q", s)
	}
	l := Line{Kind: Kind(f[0][0]), TaskID: f[1]}
	var err error
	if l.WorkerPID, err = strconv.Atoi(f[2]); err != nil {
		return Line{}, fmt.Errorf("worker pid in %q: %w", s, err)
	}
	if l.ModulePID, err = strconv.Atoi(f[3]); err != nil {
		return Line{}, fmt.Errorf("module pid in %q: %w", s, err)
	}
	ns, err := strconv.ParseInt(f[4], 10, 64)
	if err != nil {
		return Line{}, fmt.Errorf("time in %q: %w", s, err)
	}
	l.At = time.Unix(0, ns)
	if l.Kind == End {
		if len(f) != 6 {
			return Line{}, fmt.Errorf("end line without outcome %q", s)
		}
		l.Outcome = f[5]
	}
	return l, nil
}
