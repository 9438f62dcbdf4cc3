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

// epoch is the origin of the engine's internal times, in unix seconds
// (2020-01-01 UTC): fixed, so that saved state means the same to every
// process. uint32 seconds from it last until 2156.
const epoch = 1577836800

func (e *Engine) clock() uint32 { return internalTime(e.now().Unix()) }

// internalTime converts unix seconds to the engine's time.
func internalTime(unix int64) uint32 {
	if s := unix - epoch; s >= 1 {
		return uint32(s)
	}
	return 1
}

// unixTime converts the engine's time back to unix seconds.
func unixTime(now uint32) int64 { return int64(now) + epoch }

func (e *Engine) since(now uint32) uint32 {
	if now <= e.window {
		return 0
	}
	return now - e.window
}
