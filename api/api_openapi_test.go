package api

import (
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// openAPISpec is the part of api/openapi.yaml the route check reads.
type openAPISpec struct {
	OpenAPI string                                 `yaml:"openapi"`
	Paths   map[string]map[string]openAPIOperation `yaml:"paths"`
}

type openAPIOperation struct {
	Responses map[string]any `yaml:"responses"`
}

func readOpenAPI(t *testing.T) openAPISpec {
	t.Helper()
	b, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Path items also hold "parameters", which is not an operation; decode
	// loosely first and keep the HTTP methods.
	var raw struct {
		OpenAPI string                          `yaml:"openapi"`
		Paths   map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &raw); err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	spec := openAPISpec{OpenAPI: raw.OpenAPI, Paths: map[string]map[string]openAPIOperation{}}
	for path, item := range raw.Paths {
		spec.Paths[path] = map[string]openAPIOperation{}
		for key, node := range item {
			switch key {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				var op openAPIOperation
				if err := node.Decode(&op); err != nil {
					t.Fatalf("%s %s: %v", key, path, err)
				}
				spec.Paths[path][strings.ToUpper(key)] = op
			}
		}
	}
	return spec
}

// TestOpenAPIDescribesTheRoutes checks api/openapi.yaml against the routes
// chatd serves: the same set of routes, and each one served (not the mux's
// 404 or 405) with a status the description documents.
func TestOpenAPIDescribesTheRoutes(t *testing.T) {
	spec := readOpenAPI(t)
	if !strings.HasPrefix(spec.OpenAPI, "3.1") {
		t.Errorf("openapi %q, want 3.1.x", spec.OpenAPI)
	}
	var described []string
	for path, ops := range spec.Paths {
		for method := range ops {
			described = append(described, method+" "+path)
		}
	}
	sort.Strings(described)
	if served := apiRoutes(); !slices.Equal(described, served) {
		t.Fatalf("api/openapi.yaml describes\n  %s\nbut chatd serves\n  %s", strings.Join(described, "\n  "), strings.Join(served, "\n  "))
	}

	s, ts := apiTestServer(t, Config{Token: apiToken})
	bodies := map[string]string{
		"POST /api/v1/rooms/{room}/messages": `{"text":"hello"}`,
		"POST /api/v1/emit":                  `{"event":"notice","data":{"n":1},"rooms":["general"]}`,
	}
	for _, route := range described {
		t.Run(route, func(t *testing.T) {
			// A socket of its own, so that a DELETE does not affect the others.
			c := apiDial(t, ts, map[string]any{"userId": "alice"}, nil)
			c.join("general")
			method, path, _ := strings.Cut(route, " ")
			concrete := strings.NewReplacer("{room}", "general", "{socketId}", c.id, "{userId}", "alice", "{stage}", "prod").Replace(path)
			body := bodies[route]
			if body == "" && method == http.MethodPost {
				body = "hello"
			}
			req, err := http.NewRequest(method, ts.URL+concrete, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+apiToken)

			// Routed to this route's handler.
			if _, pattern := s.mux.Handler(req); pattern != route {
				if _, staged := stagedGatewayPath(req.URL.EscapedPath()); !staged || !strings.HasPrefix(path, "/{stage}/") {
					t.Fatalf("%s %s is routed to %q", method, concrete, pattern)
				}
			}
			r := apiSend(t, req)
			op := spec.Paths[path][method]
			if _, ok := op.Responses[strconv.Itoa(r.status)]; !ok {
				t.Fatalf("answered %d (%s), which the description does not list", r.status, r.raw)
			}
			if r.status/100 != 2 {
				t.Fatalf("answered %d: %s", r.status, r.raw)
			}
		})
	}
}
