package engine

// Preload starts loading the index slots of names into the CPU's caches
// and returns without waiting for them. Over many names a name's slot is
// a miss to memory; observing a batch of answers after preloading their
// names waits on those misses together rather than one by one. It takes
// no lock.
func (e *Engine) Preload(names []string) {
	var addrs [64]uintptr
	for len(names) > 0 {
		n := min(len(names), len(addrs))
		for i, name := range names[:n] {
			sh, k := e.st.locate(name)
			addrs[i] = sh.index.slotAddr(k.hash)
		}
		// Apart from the hashing, so that the prefetches go out together.
		for _, addr := range addrs[:n] {
			if addr != 0 {
				prefetch(addr)
			}
		}
		names = names[n:]
	}
}
