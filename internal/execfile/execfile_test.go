package execfile

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "exe")
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plain, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Check(exe); err != nil {
		t.Fatalf("executable: %v", err)
	}
	if err := Check(filepath.Join(dir, "missing")); !IsNotExist(err) {
		t.Fatalf("missing: %v, want fs.ErrNotExist", err)
	}
	if err := Check(dir); !errors.Is(err, ErrIsDir) {
		t.Fatalf("directory: %v, want ErrIsDir", err)
	}
	if runtime.GOOS != "windows" {
		if err := Check(plain); !errors.Is(err, ErrNotExecutable) {
			t.Fatalf("plain file: %v, want ErrNotExecutable", err)
		}
	}
}

func TestSHA256(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("taskiq"), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("taskiq"))
	got, err := SHA256(path)
	if err != nil || got != hex.EncodeToString(sum[:]) {
		t.Fatalf("SHA256 = %q, %v; want %x", got, err, sum)
	}
	if _, err := SHA256(path + ".missing"); !IsNotExist(err) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestExplainSaysWhatAndHow(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "mod")
	err := Explain("task module", missing, "build it first")
	if !IsNotExist(err) || !strings.Contains(err.Error(), "task module "+missing+" does not exist; build it first") {
		t.Fatalf("missing: %v", err)
	}
	if err := Explain("task module", dir, ""); !errors.Is(err, ErrIsDir) || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("directory: %v", err)
	}
	if runtime.GOOS != "windows" {
		plain := filepath.Join(dir, "plain")
		if err := os.WriteFile(plain, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := Explain("task module", plain, ""); !errors.Is(err, ErrNotExecutable) || !strings.Contains(err.Error(), "chmod +x "+plain) {
			t.Fatalf("not executable: %v", err)
		}
	}
}
