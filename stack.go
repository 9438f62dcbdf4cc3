package fluxguard

// A query's goroutine starts with a small stack, which the runtime doubles
// by copying it when a call does not fit. reserveStack makes it grow as
// fluxguard calls the chain, with few frames to copy, rather than deep in
// the chain where every frame above would be copied (docs/performance.md).

// stackReserve is the stack made free for a query whose answer most likely
// comes from cache: room for cache's frame and a cache hit's write.
// upstreamStackReserve is made free for one whose answer most likely comes
// from upstream (a name fluxguard has not seen), whose unpacking runs deep.
const (
	stackReserve         = 2560
	upstreamStackReserve = 8192
)

// reserveStack grows the goroutine's stack now if less than the reserve is
// free, and gives it back as it returns: it adds nothing to the depth of
// the rest of the chain.
func reserveStack(upstream bool) {
	if upstream {
		growStackUpstream()
	} else {
		growStack()
	}
}

// growStack makes stackReserve bytes free. The reserve is declared in a
// branch never taken, so that it is on the frame without being zeroed.
//
//go:noinline
func growStack() {
	if reserveUsed {
		var reserve [stackReserve]byte
		reserved(reserve[:])
	}
}

// growStackUpstream is growStack with upstreamStackReserve.
//
//go:noinline
func growStackUpstream() {
	if reserveUsed {
		var reserve [upstreamStackReserve]byte
		reserved(reserve[:])
	}
}

// reserveUsed is never set; the compiler cannot tell, so the reserves stay
// on their frames.
var reserveUsed bool

// reserved keeps a reserve on its frame.
//
//go:noinline
func reserved([]byte) {}
