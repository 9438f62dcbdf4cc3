package engine

import "math/bits"

// block is a run of a slab's elements: where it starts, how many are in
// use and how many it holds, a power of two (0 for no block).
type block struct {
	off      uint32
	len, cap uint16
}

// maxBlockClass is the log2 of the largest block: lists hold up to 1024
// values (Config.Validate) and names up to 255 bytes.
const maxBlockClass = 10

// slab hands out blocks of power-of-two sizes from fixed-size chunks and
// reuses the freed ones. Its chunks, of a pointer-free T, are in an arena,
// outside the Go heap; they never move, so it grows without copying. A
// chunk's pages take memory once touched. The engine keeps all its
// per-name state in slabs.
type slab[T any] struct {
	mem    *arena
	shift  uint8 // log2 of the elements of a chunk: no block is bigger
	chunks [][]T
	free   [maxBlockClass + 1][]uint32
}

// newSlab returns a slab of chunks of 1<<shift elements from mem, for
// blocks of up to as many.
func newSlab[T any](mem *arena, shift uint8) slab[T] { return slab[T]{mem: mem, shift: shift} }

// view returns b's values; appending to it within its capacity is safe.
func (s *slab[T]) view(b block) []T {
	if b.cap == 0 {
		return nil
	}
	i := b.off & (1<<s.shift - 1)
	return s.chunks[b.off>>s.shift][i : i+uint32(b.len) : i+uint32(b.cap)]
}

// alloc returns an empty block for at least n values, n ≤ 1024, and for
// one at least.
func (s *slab[T]) alloc(n int) block {
	c := bits.Len(uint(max(n, 1) - 1))
	if f := s.free[c]; len(f) > 0 {
		s.free[c] = f[:len(f)-1]
		return block{off: f[len(f)-1], cap: 1 << c}
	}
	size := 1 << c
	last := len(s.chunks) - 1
	if last < 0 || len(s.chunks[last])+size > cap(s.chunks[last]) {
		if last >= 0 {
			s.spare(last)
		}
		s.chunks = append(s.chunks, allocOf[T](s.mem, 1<<s.shift)[:0])
		last++
	}
	off := last<<s.shift + len(s.chunks[last])
	s.chunks[last] = s.chunks[last][:len(s.chunks[last])+size]
	return block{off: uint32(off), cap: uint16(size)}
}

// spare puts what is left of a full chunk on the free lists.
func (s *slab[T]) spare(chunk int) {
	used := len(s.chunks[chunk])
	for left := cap(s.chunks[chunk]) - used; left > 0; {
		c := min(bits.Len(uint(left))-1, maxBlockClass)
		s.free[c] = append(s.free[c], uint32(chunk<<s.shift+used))
		used, left = used+1<<c, left-1<<c
	}
	s.chunks[chunk] = s.chunks[chunk][:cap(s.chunks[chunk])]
}

// release frees b for reuse.
func (s *slab[T]) release(b block) {
	if b.cap == 0 {
		return
	}
	clear(s.view(b)[:b.cap])
	s.free[bits.TrailingZeros16(b.cap)] = append(s.free[bits.TrailingZeros16(b.cap)], b.off)
}

// push appends v to b, moving b to a block twice its size when it is full,
// and returns b.
func (s *slab[T]) push(b block, v T) block {
	if b.len == b.cap {
		nb := s.alloc(max(2*int(b.cap), 1))
		nb.len = uint16(copy(s.view(block{off: nb.off, len: nb.cap, cap: nb.cap}), s.view(b)))
		s.release(b)
		b = nb
	}
	b.len++
	s.view(b)[b.len-1] = v
	return b
}

// make returns a new block holding vs, or no block when vs is empty.
func (s *slab[T]) make(vs []T) block {
	if len(vs) == 0 {
		return block{}
	}
	b := s.alloc(len(vs))
	b.len = uint16(len(vs))
	copy(s.view(b), vs)
	return b
}
