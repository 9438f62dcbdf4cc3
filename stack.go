package fluxguard

// A query's goroutine starts with a small stack, which the runtime doubles
// by copying it when a call does not fit, adjusting every frame on it. A
// cache hit fits the stack it starts with, and fluxguard writes the
// answer from its own frame (see captureWriter) so that it still does; a
// forwarded answer's unpacking runs deep and grows it. For a name it has
// not seen, whose answer most likely comes from upstream, fluxguard grows
// the stack before it calls the chain, a few frames deep, rather than
// deep in the unpacking, where every frame above would be copied
// (docs/performance.md).

// upstreamStackReserve is the stack made free for a query whose answer
// most likely comes from upstream.
const upstreamStackReserve = 8192

// growStack grows the goroutine's stack now if less than
// upstreamStackReserve is free, and gives it back as it returns: it adds
// nothing to the depth of the rest of the chain. The reserve is declared
// in a branch never taken, so that it is on the frame without being
// zeroed.
//
//go:noinline
func growStack() {
	if reserveUsed {
		var reserve [upstreamStackReserve]byte
		reserved(reserve[:])
	}
}

// parkDeep runs fn, a goroutine's loop that waits most of its time, below
// a reserve of upstreamStackReserve bytes. The runtime starts each new
// goroutine with a stack the size of the average in use found at the last
// GC; fluxguard's few goroutines, waiting in shallow frames, would lower
// it, so that more of the queries' goroutines outgrow the stack they
// start with and copy it. Waiting below the reserve, they count as deep
// as a query's goroutine at its deepest (docs/performance.md).
//
//go:noinline
func parkDeep(fn func()) {
	if reserveUsed {
		var reserve [upstreamStackReserve]byte
		reserved(reserve[:])
	}
	fn()
}

// reserveUsed is never set; the compiler cannot tell, so the reserve stays
// on its frame.
var reserveUsed bool

// reserved keeps a reserve on its frame.
//
//go:noinline
func reserved([]byte) {}
