//go:build !amd64 && !arm64

package engine

// prefetch does nothing where no instruction for it is written here.
func prefetch(uintptr) {}
