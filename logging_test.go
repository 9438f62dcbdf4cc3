package fluxguard

import (
	"bytes"
	golog "log"
	"os"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// TestDetectionLogRateLimited checks that a flood of level changes writes
// at most a burst of lines, and that the next line counts the dropped ones.
func TestDetectionLogRateLimited(t *testing.T) {
	var buf bytes.Buffer
	golog.SetOutput(&buf)
	defer golog.SetOutput(os.Stderr)
	l := newDetectionLog()
	v := engine.Verdict{Level: engine.LevelFlagged, Score: 9}
	for range 10_000 {
		l.levelChanged("x.evil.tk", v)
	}
	if n := strings.Count(buf.String(), "technique=T1568.001"); n < logBurst || n > logBurst+logRate {
		t.Fatalf("%d lines written for 10000 changes", n)
	}
	l.limit = rate.NewLimiter(logRate, logBurst) // as if time had passed
	l.levelChanged("y.evil.tk", v)
	if !strings.Contains(buf.String(), "domain=y.evil.tk") || !strings.Contains(buf.String(), "suppressed_before=") {
		t.Errorf("the line after a flood does not count the dropped lines:\n%s", buf.String()[max(0, buf.Len()-300):])
	}
}

// TestLogField checks that a name can only be one field of a log line.
func TestLogField(t *testing.T) {
	tests := []struct{ name, want string }{
		{"login.fluxy.top", "login.fluxy.top"},
		{"*.evil-wild.com", "*.evil-wild.com"},
		{"_dmarc.example.com", "_dmarc.example.com"},
		{`x\ level=none.evil.tk`, `"x\\ level=none.evil.tk"`},
		{`x\010y.evil.tk`, `"x\\010y.evil.tk"`},
		{"Upper.example", `"Upper.example"`},
	}
	for _, tc := range tests {
		if got := logField(tc.name); got != tc.want {
			t.Errorf("logField(%q) = %s, want %s", tc.name, got, tc.want)
		}
	}
}
