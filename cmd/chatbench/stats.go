package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat's CPU
// times; it is 100 on every Linux that chatbench targets.
const clockTicks = 100

// serverStats reads the servers' resource use: VmRSS and CPU time from
// /proc/<pid>, goroutines from chatd's /metrics (go_goroutines).
type serverStats struct {
	pids    []int
	metrics []string // URLs; empty skips goroutines
	client  *http.Client
}

// sample is the servers' resource use at one moment, summed over
// instances; a field is -1 when it could not be read.
type sample struct {
	at         time.Time
	rssKB      int64
	cpuTicks   int64
	goroutines int64
	heapInuse  int64 // bytes of Go heap in use (go_memstats_heap_inuse_bytes), -1 if unknown
	busyTicks  int64 // the whole machine's busy CPU time, -1 if unknown
	selfTicks  int64 // chatbench's own CPU time, -1 if unknown
}

// read takes a sample.
func (s *serverStats) read(ctx context.Context) sample {
	out := sample{at: time.Now(), rssKB: -1, cpuTicks: -1, goroutines: -1, heapInuse: -1, busyTicks: -1, selfTicks: -1}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		if v, err := parseMachineBusy(b); err == nil {
			out.busyTicks = v
		}
	}
	if v, err := readCPUTicks(os.Getpid()); err == nil {
		out.selfTicks = v
	}
	if len(s.pids) > 0 {
		out.rssKB, out.cpuTicks = 0, 0
		for _, pid := range s.pids {
			rss, err := readRSS(pid)
			if err != nil {
				out.rssKB = -1
			} else if out.rssKB >= 0 {
				out.rssKB += rss
			}
			cpu, err := readCPUTicks(pid)
			if err != nil {
				out.cpuTicks = -1
			} else if out.cpuTicks >= 0 {
				out.cpuTicks += cpu
			}
		}
	}
	if len(s.metrics) > 0 {
		out.goroutines, out.heapInuse = 0, 0
		for _, u := range s.metrics {
			g, h, err := s.goroutines(ctx, u)
			if err != nil {
				out.goroutines, out.heapInuse = -1, -1
				break
			}
			out.goroutines += g
			if h < 0 || out.heapInuse < 0 {
				out.heapInuse = -1
			} else {
				out.heapInuse += h
			}
		}
	}
	return out
}

// readRSS returns VmRSS of pid in kB.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(b)
}

// parseVmRSS finds "VmRSS:   1234 kB" in a /proc/<pid>/status text.
func parseVmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("unexpected VmRSS line %q", line)
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS line")
}

// readCPUTicks returns utime+stime of pid, in clock ticks.
func readCPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU returns fields 14 and 15 (utime, stime) of a /proc/<pid>/stat
// line, added. The command name in field 2 may hold spaces, so fields are
// counted after its closing parenthesis.
func parseStatCPU(stat []byte) (int64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected stat %q", clip(stat))
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected stat %q", clip(stat))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected stat %q", clip(stat))
	}
	return u + s, nil
}

// parseMachineBusy returns the busy time of all CPUs (user, nice, system,
// irq, softirq, steal), in clock ticks, from the "cpu" line of /proc/stat.
func parseMachineBusy(stat []byte) (int64, error) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat line %q", clip(line))
	}
	var busy int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("unexpected /proc/stat line %q", clip(line))
		}
		busy += v
	}
	return busy, nil
}

// goroutines reads go_goroutines from a Prometheus text endpoint.
func (s *serverStats) goroutines(ctx context.Context, u string) (goroutines, heapInuse int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, 0, err
	}
	res, err := s.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("%s: %s", u, res.Status)
	}
	return parseGoroutines(res.Body)
}

// parseGoroutines finds the go_goroutines sample in a Prometheus text page,
// and go_memstats_heap_inuse_bytes (-1 when absent).
func parseGoroutines(r io.Reader) (goroutines, heapInuse int64, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	goroutines, heapInuse = -1, -1
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || (name != "go_goroutines" && name != "go_memstats_heap_inuse_bytes") {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return 0, 0, err
		}
		if name == "go_goroutines" {
			goroutines = int64(f)
		} else {
			heapInuse = int64(f)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if goroutines < 0 {
		return 0, 0, fmt.Errorf("no go_goroutines sample")
	}
	return goroutines, heapInuse, nil
}

// usage is resource use over an interval, as the JSON result shows it.
type usage struct {
	RSSMB      *float64 `json:"rss_mb,omitempty"`
	CPUSeconds *float64 `json:"cpu_s,omitempty"`
	CPUPercent *float64 `json:"cpu_pct,omitempty"`
	Goroutines *int64   `json:"goroutines,omitempty"`
	// OtherCPUPercent is the CPU that neither the servers nor chatbench
	// used on this machine meanwhile (100 is one whole CPU): other
	// programs that may have disturbed the measurement.
	OtherCPUPercent *float64 `json:"other_cpu_pct,omitempty"`
}

// between is the servers' use from a to b: RSS and goroutines at b, CPU
// over the interval.
func between(a, b sample) usage {
	var u usage
	if b.rssKB >= 0 {
		u.RSSMB = ptr(round(float64(b.rssKB)/1024, 1))
	}
	if a.cpuTicks >= 0 && b.cpuTicks >= 0 {
		s := float64(b.cpuTicks-a.cpuTicks) / clockTicks
		u.CPUSeconds = ptr(round(s, 2))
		if d := b.at.Sub(a.at).Seconds(); d > 0 {
			u.CPUPercent = ptr(round(100*s/d, 1))
		}
	}
	if b.goroutines >= 0 {
		u.Goroutines = ptr(b.goroutines)
	}
	d := b.at.Sub(a.at).Seconds()
	if a.cpuTicks >= 0 && b.cpuTicks >= 0 && a.busyTicks >= 0 && b.busyTicks >= 0 && a.selfTicks >= 0 && b.selfTicks >= 0 && d > 0 {
		other := (b.busyTicks - a.busyTicks) - (b.cpuTicks - a.cpuTicks) - (b.selfTicks - a.selfTicks)
		u.OtherCPUPercent = ptr(round(100*max(0, float64(other))/clockTicks/d, 1))
	}
	return u
}

// selfCPU returns this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// generatorUsage is chatbench's own CPU use over an interval.
type generatorUsage struct {
	CPUSeconds float64 `json:"cpu_s"`
	CPUPercent float64 `json:"cpu_pct"`
}

// cpuMeter measures chatbench's CPU use from its creation.
type cpuMeter struct {
	start time.Time
	cpu   time.Duration
}

func newCPUMeter() cpuMeter { return cpuMeter{start: time.Now(), cpu: selfCPU()} }

func (m cpuMeter) usage() generatorUsage {
	cpu := (selfCPU() - m.cpu).Seconds()
	wall := time.Since(m.start).Seconds()
	u := generatorUsage{CPUSeconds: round(cpu, 2)}
	if wall > 0 {
		u.CPUPercent = round(100*cpu/wall, 1)
	}
	return u
}

func ptr[T any](v T) *T { return &v }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
