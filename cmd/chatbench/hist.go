package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram counts durations in log-linear buckets: exact below 128 ns, then
// 64 buckets per power of two, so a reported quantile is within 1.6% of the
// true one. It is safe for concurrent use and costs one atomic add per
// sample.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64 // nanoseconds
}

const (
	histSubBits = 6  // 64 buckets per power of two
	histMaxExp  = 44 // up to 2^44 ns, about 4.9 hours
	histBuckets = (histMaxExp-histSubBits)<<histSubBits + 2<<histSubBits
)

// histIndex returns the bucket of v nanoseconds.
func histIndex(v int64) int {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	if u < 2<<histSubBits {
		return int(u) //nolint:gosec // below 2<<histSubBits
	}
	shift := bits.Len64(u) - histSubBits - 1
	i := shift<<histSubBits + int(u>>uint(shift)) //nolint:gosec // below 2<<histSubBits after the shift
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// histUpper returns the largest value of bucket i, in nanoseconds.
func histUpper(i int) int64 {
	if i < 2<<histSubBits {
		return int64(i)
	}
	shift := i>>histSubBits - 1
	sub := i - shift<<histSubBits
	return int64(sub+1)<<uint(shift) - 1
}

// record adds one sample of d nanoseconds.
func (h *histogram) record(d int64) {
	h.counts[histIndex(d)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if d <= m || h.max.CompareAndSwap(m, d) {
			return
		}
	}
}

// quantile returns the q quantile (0 < q <= 1) in nanoseconds, or 0 without
// samples.
func (h *histogram) quantile(q float64) int64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(histUpper(i), h.max.Load())
		}
	}
	return h.max.Load()
}

// latency is a histogram's summary as the JSON result shows it, in
// milliseconds.
type latency struct {
	N     uint64  `json:"n"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
	Valid bool    `json:"-"`
}

// summary summarizes h.
func (h *histogram) summary() latency {
	ms := func(ns int64) float64 { return math.Round(float64(ns)/float64(time.Millisecond)*1000) / 1000 }
	return latency{
		N:     h.n.Load(),
		P50:   ms(h.quantile(0.50)),
		P99:   ms(h.quantile(0.99)),
		P999:  ms(h.quantile(0.999)),
		Max:   ms(h.max.Load()),
		Valid: h.n.Load() > 0,
	}
}
