package deploytest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// promMetric is a metric family chatd exposes on /metrics.
type promMetric struct {
	typ    string // counter, gauge or histogram
	labels []string
}

// chatdMetrics are the families chatd exposes: its own (checked against the
// Go sources by TestChatdMetricsListMatchesSources) and the few Go and
// process collector families the dashboard uses.
var chatdMetrics = map[string]promMetric{
	"chatd_sockets":                          {"gauge", nil},
	"chatd_users":                            {"gauge", nil},
	"chatd_rooms":                            {"gauge", nil},
	"chatd_events_received_total":            {"counter", []string{"event"}},
	"chatd_events_emitted_total":             {"counter", []string{"event"}},
	"chatd_acks_total":                       {"counter", []string{"event", "code"}},
	"chatd_message_fanout_sockets":           {"histogram", nil},
	"chatd_rate_limited_total":               {"counter", nil},
	"chatd_limit_refusals_total":             {"counter", []string{"limit"}},
	"chatd_volatile_dropped_total":           {"counter", nil},
	"chatd_slow_clients_disconnected_total":  {"counter", nil},
	"chatd_server_closes_total":              {"counter", []string{"reason"}},
	"chatd_send_buffered_bytes":              {"gauge", nil},
	"chatd_idle_memory_releases_total":       {"counter", nil},
	"chatd_connection_bursts_total":          {"counter", nil},
	"chatd_idle_memory_released_bytes_total": {"counter", nil},
	"chatd_draining":                         {"gauge", nil},
	"chatd_api_requests_total":               {"counter", []string{"route", "status"}},
	"chatd_admin_logins_total":               {"counter", []string{"result"}},
	"chatd_admin_requests_total":             {"counter", []string{"request", "result"}},
	"chatd_admin_events_dropped_total":       {"counter", nil},
	"chatd_redis_command_seconds":            {"histogram", []string{"command"}},
	"chatd_redis_command_errors_total":       {"counter", []string{"command"}},
	"chatd_pubsub_published_total":           {"counter", []string{"kind"}},
	"chatd_pubsub_received_total":            {"counter", []string{"kind"}},
	"chatd_pubsub_publish_failures_total":    {"counter", []string{"kind", "reason"}},
	"chatd_cluster_request_seconds":          {"histogram", []string{"kind", "outcome"}},
	"chatd_cluster_nodes":                    {"gauge", nil},
	"chatd_redis_ready":                      {"gauge", nil},
	"chatd_redis_data_lost_total":            {"counter", nil},

	"go_goroutines":                 {"gauge", nil},
	"process_cpu_seconds_total":     {"counter", nil},
	"process_resident_memory_bytes": {"gauge", nil},
}

// targetLabels are added by Prometheus to every series it scrapes.
var targetLabels = []string{"job", "instance"}

// promFunctions are the PromQL (and Grafana template) functions and
// aggregations the dashboard may use; anything else is a typo.
var promFunctions = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "count": true,
	"rate": true, "irate": true, "increase": true, "histogram_quantile": true,
	"clamp_min": true, "clamp_max": true, "label_values": true,
}

var promKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
	"group_right": true, "bool": true, "and": true, "or": true, "unless": true, "offset": true,
}

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promSelector = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^{}]*)\}`)
	promMatcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	promNumber   = regexp.MustCompile(`\b\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	labelValues  = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_]\w*)\)$`)
)

// family maps a series name to its family: the name itself, or a histogram
// family for its _bucket, _sum and _count series.
func family(name string) (string, promMetric, bool) {
	if m, ok := chatdMetrics[name]; ok && m.typ != "histogram" {
		return name, m, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if m, ok := chatdMetrics[base]; ok && m.typ == "histogram" {
				if suffix == "_bucket" {
					m.labels = append(slices.Clone(m.labels), "le")
				}
				return base, m, true
			}
		}
	}
	return "", promMetric{}, false
}

// checkPromQL returns the families expr reads, and the problems found: an
// unknown series name or function, or a label that the series it filters or
// groups does not have.
func checkPromQL(expr string) (families []string, problems []string) {
	e := promString.ReplaceAllString(expr, `""`)
	var labelsSeen []string // every label of every series in the expression
	// Selectors with their label matchers.
	for _, m := range promSelector.FindAllStringSubmatch(e, -1) {
		name := m[1]
		var allowed []string
		if name != "" && !promFunctions[name] {
			fam, pm, ok := family(name)
			if !ok {
				problems = append(problems, fmt.Sprintf("unknown series %q", name))
				continue
			}
			families = append(families, fam)
			allowed = append(append(allowed, pm.labels...), targetLabels...)
			labelsSeen = append(labelsSeen, allowed...)
		}
		for _, lm := range promMatcher.FindAllStringSubmatch(m[2], -1) {
			if lm[1] == "__name__" {
				problems = append(problems, "selects series by __name__, which this check cannot follow")
				continue
			}
			if name != "" && !slices.Contains(allowed, lm[1]) {
				problems = append(problems, fmt.Sprintf("%s has no label %q", name, lm[1]))
			}
		}
	}
	e = promSelector.ReplaceAllString(e, "$1 ")
	e = promRange.ReplaceAllString(e, " ")
	var grouped []string
	for _, m := range promGrouping.FindAllStringSubmatch(e, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				grouped = append(grouped, l)
			}
		}
	}
	e = promGrouping.ReplaceAllString(e, " ")
	e = promNumber.ReplaceAllString(e, " ")
	for _, m := range promIdent.FindAllStringSubmatch(e, -1) {
		word := strings.TrimRight(m[0], " \t\n(")
		switch {
		case m[1] != "":
			if !promFunctions[word] {
				problems = append(problems, fmt.Sprintf("unknown function %q", word))
			}
		case promKeywords[word]:
		default:
			fam, pm, ok := family(word)
			if !ok {
				problems = append(problems, fmt.Sprintf("unknown series %q", word))
				continue
			}
			families = append(families, fam)
			labelsSeen = append(append(labelsSeen, pm.labels...), targetLabels...)
		}
	}
	for _, l := range grouped {
		if !slices.Contains(labelsSeen, l) {
			problems = append(problems, fmt.Sprintf("groups by %q, which none of its series has", l))
		}
	}
	return families, problems
}

func TestPromQLCheckCatchesMistakes(t *testing.T) {
	tests := []struct {
		expr string
		want string // "" means no problem
	}{
		{`sum by (instance) (chatd_sockets{job="$job"})`, ""},
		{`histogram_quantile(0.99, sum by (le, command) (rate(chatd_redis_command_seconds_bucket[5m])))`, ""},
		{`sum(rate(chatd_acks_total{code="unavailable"}[5m])) / clamp_min(sum(rate(chatd_acks_total[5m])), 1e-9)`, ""},
		{`sum(chatd_socket)`, `unknown series "chatd_socket"`},
		{`sum(chatd_redis_command_seconds)`, `unknown series "chatd_redis_command_seconds"`},
		{`chatd_sockets_bucket`, `unknown series "chatd_sockets_bucket"`},
		{`sum(chatd_acks_total{evnt="join"})`, `chatd_acks_total has no label "evnt"`},
		{`sum by (room) (chatd_acks_total)`, `groups by "room"`},
		{`sum by (le) (chatd_redis_command_seconds_count)`, `groups by "le"`},
		{`rat(chatd_acks_total[5m])`, `unknown function "rat"`},
		{`{__name__="chatd_sockets"}`, `__name__`},
	}
	for _, tt := range tests {
		_, problems := checkPromQL(tt.expr)
		got := strings.Join(problems, "; ")
		if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("checkPromQL(%s) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

// TestChatdMetricsListMatchesSources keeps chatdMetrics honest: every chatd_
// family registered in the Go sources is in the list with the same type and
// labels, and the list has none that the sources lack.
func TestChatdMetricsListMatchesSources(t *testing.T) {
	root := repoRoot(t)
	var files []string
	for _, dir := range []string{"server", "api", "cmd/chatd", "redis"} {
		matches, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range matches {
			if !strings.HasSuffix(f, "_test.go") {
				files = append(files, f)
			}
		}
	}
	def := regexp.MustCompile(`(?s)prometheus\.New(Gauge|Counter|Histogram)(?:Vec|Func)?\(prometheus\.\w+Opts\{\s*Name:\s*"(chatd_\w+)".*?\}(?:,\s*\[\]string\{([^}]*)\}\s*\)|\s*\)|,\s*(?:func|\w+\)))`)
	found := map[string]promMetric{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range def.FindAllStringSubmatch(string(src), -1) {
			pm := promMetric{typ: strings.ToLower(m[1])}
			for _, l := range strings.Split(m[3], ",") {
				if l = strings.Trim(strings.TrimSpace(l), `"`); l != "" {
					pm.labels = append(pm.labels, l)
				}
			}
			found[m[2]] = pm
		}
	}
	if len(found) < 10 {
		t.Fatalf("found only %d chatd_ metric definitions in %v; has the way metrics are defined changed?", len(found), files)
	}
	for name, pm := range found {
		want, ok := chatdMetrics[name]
		switch {
		case !ok:
			t.Errorf("the sources define %s (%s %v), which chatdMetrics lacks", name, pm.typ, pm.labels)
		case want.typ != pm.typ || !slices.Equal(want.labels, pm.labels):
			t.Errorf("%s is a %s with labels %v in the sources, %s %v in chatdMetrics", name, pm.typ, pm.labels, want.typ, want.labels)
		}
	}
	for name := range chatdMetrics {
		if _, ok := found[name]; !ok && strings.HasPrefix(name, "chatd_") {
			t.Errorf("chatdMetrics has %s, which the sources do not define", name)
		}
	}
}

// grafanaDashboard is the part of a Grafana dashboard model the test reads.
type grafanaDashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

// TestGrafanaDashboard checks deploy/grafana-dashboard.json: valid JSON in
// Grafana's dashboard model, every query reads only series and labels chatd
// exposes, and every chatd metric is on some panel.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("grafana-dashboard.json is not a JSON dashboard: %v", err)
	}
	if dec.More() {
		t.Fatal("grafana-dashboard.json has more than one JSON value")
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 || len(d.Panels) == 0 {
		t.Fatalf("dashboard lacks uid, title, schemaVersion or panels: uid=%q title=%q schemaVersion=%d panels=%d",
			d.UID, d.Title, d.SchemaVersion, len(d.Panels))
	}

	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if json.Unmarshal(v.Query, &q) != nil {
			_ = json.Unmarshal(v.Query, &q.Query)
		}
		for _, query := range []string{q.Query, v.Definition} {
			m := labelValues.FindStringSubmatch(query)
			if m == nil {
				t.Errorf("variable %s: %q is not label_values(series, label)", v.Name, query)
				continue
			}
			fams, problems := checkPromQL(m[1])
			for _, f := range fams {
				if l := m[2]; !slices.Contains(targetLabels, l) && !slices.Contains(chatdMetrics[f].labels, l) {
					problems = append(problems, fmt.Sprintf("%s has no label %q", f, l))
				}
			}
			if len(problems) > 0 {
				t.Errorf("variable %s: %s: %s", v.Name, query, strings.Join(problems, "; "))
			}
		}
	}
	if !vars["datasource"] {
		t.Error(`no "datasource" variable: the dashboard would be tied to one Grafana's data source uid`)
	}

	used := map[string]bool{}
	ids := map[int]bool{}
	var walk func([]grafanaPanel)
	walk = func(panels []grafanaPanel) {
		for _, p := range panels {
			where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
			if p.Title == "" {
				t.Errorf("%s has no title", where)
			}
			if ids[p.ID] {
				t.Errorf("%s: id used twice", where)
			}
			ids[p.ID] = true
			if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("%s: gridPos %+v outside Grafana's 24 columns", where, g)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: datasource is not the ${datasource} variable", where)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s has no query", where)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.RefID == "" || refs[tg.RefID] {
					t.Errorf("%s: refId %q missing or repeated", where, tg.RefID)
				}
				refs[tg.RefID] = true
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s: empty expr", where)
					continue
				}
				fams, problems := checkPromQL(tg.Expr)
				if len(problems) > 0 {
					t.Errorf("%s: %s: %s", where, tg.Expr, strings.Join(problems, "; "))
				}
				if len(fams) == 0 {
					t.Errorf("%s: %s reads no chatd series", where, tg.Expr)
				}
				for _, f := range fams {
					used[f] = true
				}
				for _, m := range regexp.MustCompile(`\$\{?(\w+)`).FindAllStringSubmatch(tg.Expr, -1) {
					if !vars[m[1]] && !strings.HasPrefix(m[1], "__") {
						t.Errorf("%s: %s uses $%s, which is not a dashboard variable", where, tg.Expr, m[1])
					}
				}
			}
		}
	}
	walk(d.Panels)

	var unused []string
	for name := range chatdMetrics {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Errorf("no panel shows %v", unused)
	}
}
