// Package execfile checks that a path names a binary the host can run and
// computes a binary's SHA-256. It is the one such check: taskiq.hcl loading,
// plugin launch and task-module loading all use it, each wording the error
// for its own setting.
package execfile

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
)

// Problems Check reports besides the errors of os.Stat (a missing file
// wraps fs.ErrNotExist).
var (
	ErrIsDir         = errors.New("is a directory")
	ErrNotExecutable = errors.New("is not executable")
)

// Check returns nil when path is a file the host can execute. Otherwise the
// error wraps fs.ErrNotExist, ErrIsDir, ErrNotExecutable or the error of
// os.Stat. On Windows, where files carry no execute bit, only existence and
// kind are checked.
func Check(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return err
	case fi.IsDir():
		return fmt.Errorf("%s %w", path, ErrIsDir)
	case runtime.GOOS != "windows" && fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("%s %w", path, ErrNotExecutable)
	}
	return nil
}

// Explain returns nil when path is a file the host can execute, and
// otherwise an error that names what the file is for ("task module",
// "plugin binary") and says how to fix it; fix is how to get a missing file
// (for example "build it first (go build -o bin/x ./cmd/x)"). The error wraps
// what Check returned.
func Explain(what, path, fix string) error {
	switch err := Check(path); {
	case err == nil:
		return nil
	case IsNotExist(err):
		return fmt.Errorf("%s %s does not exist; %s: %w", what, path, fix, err)
	case errors.Is(err, ErrIsDir):
		return fmt.Errorf("%s %s is a directory, not an executable; name the binary itself: %w", what, path, err)
	case errors.Is(err, ErrNotExecutable):
		return fmt.Errorf("%s %s is not executable; run chmod +x %s: %w", what, path, path, err)
	default:
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
}

// SHA256 returns the SHA-256 of the file at path, in lower-case hex.
func SHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// IsNotExist reports whether err says the file does not exist.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
