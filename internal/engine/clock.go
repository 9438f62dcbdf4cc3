package engine

import (
	"sync"
	"sync/atomic"
	"time"
)

// coarseEvery is how often the coarse clock is refreshed.
const coarseEvery = 100 * time.Millisecond

// coarse is the engines' default clock: the engine counts in whole seconds,
// so a time read every coarseEvery by one goroutine for the whole process
// serves every query without a clock call of its own.
var coarse struct {
	once sync.Once
	now  atomic.Int64 // unix nanoseconds
}

// coarseNow returns the time to within coarseEvery.
func coarseNow() time.Time {
	coarse.once.Do(func() {
		coarse.now.Store(time.Now().UnixNano())
		go func() {
			for t := range time.Tick(coarseEvery) {
				coarse.now.Store(t.UnixNano())
			}
		}()
	})
	return time.Unix(0, coarse.now.Load())
}
