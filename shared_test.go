package fluxguard

import (
	"path/filepath"
	"testing"
	"time"
)

// TestSharedIdentity checks what makes a reload open a new link to the
// fleet: a changed option, or a password or CA changed in place.
func TestSharedIdentity(t *testing.T) {
	dir := t.TempDir()
	pw, ca := filepath.Join(dir, "password"), filepath.Join(dir, "ca.pem")
	write := func(path, content string) { writeList(t, path, content) }
	write(pw, "first")
	write(ca, "ca one")
	base := sharedConfig{urls: []string{"rediss://redis.example:6380"}, prefix: "p", passwordFile: pw, tlsCA: ca, flush: time.Second}
	before := base.identity()
	tests := []struct {
		name    string
		change  func(c *sharedConfig)
		changed bool
	}{
		{"nothing", func(*sharedConfig) {}, false},
		{"the flush", func(c *sharedConfig) { c.flush = 2 * time.Second }, true},
		{"the password, in place", func(*sharedConfig) { write(pw, "second") }, true},
		{"the CA, in place", func(*sharedConfig) { write(ca, "ca two") }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			write(pw, "first")
			write(ca, "ca one")
			c := base
			tc.change(&c)
			if got := c.identity() != before; got != tc.changed {
				t.Errorf("Expected changed %t, got %t", tc.changed, got)
			}
		})
	}
}
