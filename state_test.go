package fluxguard

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/fluxguard/fluxguard/internal/engine"
)

func TestCause(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&os.PathError{Op: "write", Path: "/var/lib/fg.state.tmp123", Err: syscall.ENOSPC}, "no space left on device"},
		{&os.PathError{Op: "open", Path: "/var/lib/fg.state.tmp456", Err: syscall.EROFS}, "read-only file system"},
		{&os.LinkError{Op: "rename", Old: "a", New: "b", Err: syscall.EACCES}, "permission denied"},
		{os.ErrClosed, os.ErrClosed.Error()},
	}
	for _, tc := range tests {
		if got := cause(tc.err); got != tc.want {
			t.Errorf("cause(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestSaveStateRemovesStaleTemps checks that a save leaves only the state
// file, and that loading removes the temporary files of saves cut short.
func TestSaveStateRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fg.state")
	eng, err := engine.New(engine.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := saveState(eng, path); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "fg.state.tmp42")
	other := filepath.Join(dir, "other.state.tmp42")
	for _, name := range []string{stale, other} {
		if err := os.WriteFile(name, []byte("torn"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if saved := loadState(eng, path); !saved.Equal(info.ModTime()) {
		t.Errorf("loadState says the state was saved at %v, the file at %v", saved, info.ModTime())
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("%s not removed: %v", stale, err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another file's temporary file removed: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("state file gone: %v", err)
	}
}

// TestStateSeriesBeforeAnyQuery checks that a save before the block has
// served a query is labelled with its server, as the ones after: the
// alert on failing saves joins them by server.
func TestStateSeriesBeforeAnyQuery(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gone", "fg.state")
	if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, _ := newTestFluxguard(t, "fluxguard {\n state_file "+path+"\n}")
	saver := &stateSaver{path: path}
	saver.save(f.eng, f.server())
	if got := toFloat64(stateSaved.WithLabelValues(f.cfg.server)); got == 0 {
		t.Errorf("a save before any query: no state_saved_timestamp_seconds{server=%q}", f.cfg.server)
	}
	if err := os.RemoveAll(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	saver.save(f.eng, f.server())
	if got := toFloat64(stateSaveFailures.WithLabelValues(f.cfg.server)); got != 1 {
		t.Errorf("a failed save before any query: state_save_failures_total{server=%q} %v, want 1", f.cfg.server, got)
	}
}
