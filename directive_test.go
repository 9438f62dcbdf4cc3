package fluxguard

import (
	"slices"
	"testing"
)

func TestInsertDirective(t *testing.T) {
	tests := []struct {
		in      []string
		want    []string
		wantErr bool
	}{
		{[]string{"log", "acl", "cache", "forward"}, []string{"log", "acl", "fluxguard", "cache", "forward"}, false},
		{[]string{"cache"}, []string{"fluxguard", "cache"}, false},
		{[]string{"log", "forward"}, nil, true},
		{[]string{"fluxguard", "cache"}, nil, true},
	}
	for _, tt := range tests {
		in := slices.Clone(tt.in)
		got, err := InsertDirective(in)
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("InsertDirective(%v) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if !slices.Equal(in, tt.in) {
			t.Errorf("InsertDirective modified its input: %v", in)
		}
	}
}
