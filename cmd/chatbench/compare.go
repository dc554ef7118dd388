package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// metric is one number that compare reports for a scenario.
type metric struct {
	path  string // dotted JSON path
	lower bool   // lower is better
}

var compareMetrics = map[string][]metric{
	"idle": {
		{"rss_per_conn_kb", true}, {"goroutines_per_conn", true}, {"rss_after_mb", true}, {"connect_s", true},
	},
	"fanout": {
		{"deliveries_per_s", false}, {"latency.p50_ms", true}, {"latency.p99_ms", true},
		{"latency.p999_ms", true}, {"latency.max_ms", true}, {"ack_latency.p99_ms", true},
		{"server.cpu_pct", true}, {"server_cpu_us_per_delivery", true}, {"server.rss_mb", true},
		{"lost", true}, {"duplicates", true}, {"send_lag_max_ms", true}, {"server.other_cpu_pct", true},
		{"redis.cpu_us_per_message", true}, {"redis.commands_per_message", true}, {"redis.bytes_per_message", true},
	},
	"capacity": {
		{"best_rate", false}, {"best_deliveries_per_s", false},
		{"redis.cpu_us_per_message", true}, {"redis.commands_per_message", true}, {"redis.bytes_per_message", true},
	},
	"storm": {{"best_rate", false}},
}

// runCompare reads result lines and prints, as a Markdown table, each
// metric of label -a and label -b (the median over repeated runs, leaving
// out runs marked disturbed when there are others) and their ratio a/b.
func runCompare(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chatbench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	a := fs.String("a", "chatd", "label of the numerator")
	b := fs.String("b", "node", "label of the denominator")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	var lines []map[string]any
	read := func(name string, r io.Reader) error {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for n := 1; sc.Scan(); n++ {
			t := strings.TrimSpace(sc.Text())
			if !strings.HasPrefix(t, "{") {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(t), &m); err != nil {
				return fmt.Errorf("%s:%d: not a result line: %w", name, n, err)
			}
			lines = append(lines, m)
		}
		return sc.Err()
	}
	if fs.NArg() == 0 {
		if err := read("stdin", stdin); err != nil {
			return err
		}
	}
	for _, name := range fs.Args() {
		f, err := os.Open(name) //nolint:gosec // the user names the result files
		if err != nil {
			return err
		}
		err = read(name, f)
		_ = f.Close()
		if err != nil {
			return err
		}
	}
	return writeComparison(stdout, lines, *a, *b)
}

// writeComparison prints the comparison table of lines.
func writeComparison(w io.Writer, lines []map[string]any, a, b string) error {
	type key struct{ group, metric string }
	values := map[key]map[string][]float64{}
	var groups []string
	// Runs that other programs disturbed count only when a label has no
	// other run of the group.
	calm := map[[2]string]bool{}
	for _, m := range lines {
		sc, _ := m["scenario"].(string)
		label, _ := m["label"].(string)
		if d, _ := m["disturbed"].(bool); !d {
			calm[[2]string{groupName(sc, m), label}] = true
		}
	}
	var failed []string
	for _, m := range lines {
		sc, _ := m["scenario"].(string)
		label, _ := m["label"].(string)
		ms, ok := compareMetrics[sc]
		if !ok || (label != a && label != b) {
			continue
		}
		if why := runFailure(m); why != "" {
			failed = append(failed, fmt.Sprintf("%s %s: %s", label, groupName(sc, m), why))
			continue
		}
		g := groupName(sc, m)
		if d, _ := m["disturbed"].(bool); d && calm[[2]string{g, label}] {
			continue
		}
		if !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
		for _, mt := range ms {
			v, ok := lookup(m, mt.path)
			if !ok {
				continue
			}
			k := key{g, mt.path}
			if values[k] == nil {
				values[k] = map[string][]float64{}
			}
			values[k][label] = append(values[k][label], v)
		}
	}
	if len(groups) == 0 {
		return fmt.Errorf("no result lines labelled %q or %q", a, b)
	}
	fmt.Fprintf(w, "| run | metric | %s | %s | %s/%s | better |\n|---|---|---:|---:|---:|---|\n", a, b, a, b)
	for _, g := range groups {
		sc, _, _ := strings.Cut(g, " ")
		for _, mt := range compareMetrics[sc] {
			v := values[key{g, mt.path}]
			if v == nil {
				continue
			}
			va, okA := median(v[a])
			vb, okB := median(v[b])
			ratio := "-"
			if okA && okB && vb != 0 {
				ratio = strconv.FormatFloat(va/vb, 'f', 2, 64)
			}
			better := "higher"
			if mt.lower {
				better = "lower"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", g, mt.path, cell(va, okA, len(v[a])), cell(vb, okB, len(v[b])), ratio, better)
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(w, "\nFailed runs, left out of the table:\n")
		for _, f := range failed {
			fmt.Fprintf(w, "- %s\n", f)
		}
		return fmt.Errorf("%d failed runs (connections lost or not made)", len(failed))
	}
	return nil
}

// runFailure says why a result line is a failed run, or "": an error (a
// connection that could not be made, a run past its timeout) or a
// connection the server closed. Such a run measured nothing; it is not
// noise to average away.
func runFailure(m map[string]any) string {
	if e, _ := m["error"].(string); e != "" {
		return e
	}
	if n, ok := lookup(m, "dropped_connections"); ok && n > 0 {
		return fmt.Sprintf("%.0f connections dropped", n)
	}
	return ""
}

// groupName identifies runs that compare: same scenario and sizes.
func groupName(sc string, m map[string]any) string {
	n := func(path string) string {
		v, _ := lookup(m, path)
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	// Runs over one Redis and over a Redis Cluster's masters are
	// different runs, whatever their sizes.
	redis := ""
	if _, ok := lookup(m, "redis_nodes"); ok {
		redis = " on " + n("redis_nodes") + " redis"
	}
	switch sc {
	case "idle":
		return fmt.Sprintf("idle %s conns x%s inst", n("connections"), n("targets"))
	case "fanout":
		return fmt.Sprintf("fanout %sx%s @%s/s x%s inst%s", n("rooms"), n("members"), n("rate"), n("targets"), redis)
	case "capacity":
		return fmt.Sprintf("capacity %sx%s p99<=%sms x%s inst%s", n("rooms"), n("members"), n("p99_limit_ms"), n("targets"), redis)
	default:
		return fmt.Sprintf("%s x%s inst", sc, n("targets"))
	}
}

// lookup returns the number at a dotted path.
func lookup(m map[string]any, path string) (float64, bool) {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return 0, false
		}
		cur = mm[p]
	}
	f, ok := cur.(float64)
	return f, ok
}

func median(v []float64) (float64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

func cell(v float64, ok bool, n int) string {
	if !ok {
		return "-"
	}
	s := strconv.FormatFloat(v, 'g', 4, 64)
	if n > 1 {
		s += fmt.Sprintf(" (median of %d)", n)
	}
	return s
}
