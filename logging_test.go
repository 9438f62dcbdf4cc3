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
