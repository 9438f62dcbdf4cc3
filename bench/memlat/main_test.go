//go:build linux

package main

import "testing"

// TestMeasure runs both measures over small mappings of each kind of page.
func TestMeasure(t *testing.T) {
	for _, tc := range []struct {
		size int
		huge bool
	}{
		{64 << 10, false},
		{hugePage, true},
	} {
		dependent, independent, hugeKB := measure(tc.size, tc.huge, 10_000)
		if dependent <= 0 || independent <= 0 || hugeKB == "unknown" {
			t.Errorf("measure(%d, %v) = %v, %v, %s: want two positive times and the huge pages", tc.size, tc.huge, dependent, independent, hugeKB)
		}
	}
}

// TestAnonHugeKB checks that the process's huge pages are read: Linux
// has had smaps_rollup, with the field, since 4.14.
func TestAnonHugeKB(t *testing.T) {
	if kb, ok := anonHugeKB(); !ok || kb < 0 {
		t.Errorf("anonHugeKB() = %d, %v: want the field", kb, ok)
	}
}
