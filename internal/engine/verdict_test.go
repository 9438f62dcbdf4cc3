package engine

import (
	"strings"
	"testing"
)

func TestReasonName(t *testing.T) {
	tests := []struct {
		r    Reasons
		want string
	}{
		{0, ""},
		{ReasonSuspiciousTLD, "suspicious_tld"},
		{ReasonSharedPool, "shared_pool"},
		{ReasonKnownBadAddr, "known_bad_addr"},
		{ReasonRotating | ReasonShortTTL, ""},
		{1 << 31, ""},
	}
	for _, tt := range tests {
		if got := tt.r.Name(); got != tt.want {
			t.Errorf("Reasons(%#x).Name() = %q, want %q", uint32(tt.r), got, tt.want)
		}
	}
	// Each reason's name is its part of String.
	all := Reasons(1<<len(reasonNames) - 1)
	var names []string
	for i := range reasonNames {
		names = append(names, Reasons(1<<i).Name())
	}
	if got := strings.Join(names, ","); got != all.String() {
		t.Errorf("names %q, String %q", got, all.String())
	}
}
