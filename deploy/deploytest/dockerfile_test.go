package deploytest

import (
	"bufio"
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int
}

// stage is one FROM ... [AS name] block.
type stage struct {
	from, name string
	body       []instruction
}

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		stages  []stage
		pending strings.Builder
		start   int
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if pending.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if pending.Len() > 0 && strings.HasPrefix(line, "#") {
			continue // comment lines inside a continued instruction
		}
		if pending.Len() == 0 {
			start = n
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			pending.WriteString(cont + " ")
			continue
		}
		pending.WriteString(line)
		cmd, args, _ := strings.Cut(pending.String(), " ")
		pending.Reset()
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			fields := strings.Fields(in.args)
			s := stage{from: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				s.name = fields[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile line %d: %s before the first FROM", in.line, in.cmd)
			}
			continue
		}
		stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}

// find returns the instructions of s with command cmd.
func (s stage) find(cmd string) []instruction {
	var out []instruction
	for _, in := range s.body {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func (s stage) has(cmd, substr string) bool {
	return slices.ContainsFunc(s.find(cmd), func(in instruction) bool { return strings.Contains(in.args, substr) })
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, filepath.Join(repoRoot(t), "Dockerfile"))
	if len(stages) != 3 {
		t.Fatalf("want 3 stages (web, build, runtime), have %d", len(stages))
	}
	web, build, runtime := stages[0], stages[1], stages[2]

	if !strings.HasPrefix(web.from, "node:") || web.name == "" {
		t.Errorf("first stage FROM %s AS %q, want a named node stage", web.from, web.name)
	}
	if !web.has("RUN", "npm ci") || !web.has("RUN", "npm run build") {
		t.Error("web stage does not run `npm ci` and `npm run build`")
	}

	if !strings.HasPrefix(build.from, "golang:") || build.name == "" {
		t.Errorf("second stage FROM %s AS %q, want a named golang stage", build.from, build.name)
	}
	if !build.has("COPY", "--from="+web.name) || !build.has("COPY", "web/dist") {
		t.Error("Go stage does not copy web/dist from the web stage (go:embed needs it)")
	}
	if !web.has("RUN", "npm --prefix adminui run build") || !build.has("COPY", "web/adminui/dist") {
		t.Error("the Admin UI is not built in the web stage and copied into web/adminui/dist (go:embed needs it)")
	}
	for _, arg := range []string{"VERSION", "COMMIT"} {
		if !slices.ContainsFunc(build.find("ARG"), func(in instruction) bool { return strings.HasPrefix(in.args, arg) }) {
			t.Errorf("Go stage declares no ARG %s", arg)
		}
	}
	var goBuild string
	for _, in := range build.find("RUN") {
		if strings.Contains(in.args, "go build") {
			goBuild = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X main.version=${VERSION}", "-X main.commit=${COMMIT}", "./cmd/chatd"} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("go build %q lacks %q", goBuild, want)
		}
	}

	if !strings.HasPrefix(runtime.from, "gcr.io/distroless/static") && runtime.from != "scratch" {
		t.Errorf("runtime FROM %s, want distroless static or scratch", runtime.from)
	}
	users := runtime.find("USER")
	if len(users) == 0 && !strings.HasSuffix(runtime.from, ":nonroot") {
		t.Error("runtime stage sets no non-root USER")
	}
	for _, u := range users {
		if name, _, _ := strings.Cut(u.args, ":"); name == "root" || name == "0" {
			t.Errorf("runtime USER %s is root", u.args)
		}
	}
	if !runtime.has("COPY", "--from="+build.name) || !runtime.has("COPY", "/chatd") {
		t.Error("runtime stage does not copy /chatd from the Go stage")
	}
	if !slices.ContainsFunc(runtime.find("EXPOSE"), func(in instruction) bool { return in.args == "3000" }) {
		t.Error("runtime stage does not EXPOSE 3000")
	}
	if !runtime.has("HEALTHCHECK", `CMD ["/chatd", "healthcheck"]`) {
		t.Error(`HEALTHCHECK does not run ["/chatd", "healthcheck"] (distroless has no curl)`)
	}
	if ep := runtime.find("ENTRYPOINT"); len(ep) != 1 || ep[0].args != `["/chatd"]` {
		t.Errorf(`ENTRYPOINT = %v, want ["/chatd"] (chatd runs with no arguments)`, ep)
	}
	if len(runtime.find("CMD")) > 0 {
		t.Error("runtime stage has a CMD: chatd runs with no arguments")
	}
}

// TestDockerfileVersionVariables checks that the -X flags of the Dockerfile land: the linker
// silently ignores -X for a variable that does not exist.
func TestDockerfileVersionVariables(t *testing.T) {
	files := mainGoFiles(t)
	fset := token.NewFileSet()
	found := map[string]bool{}
	for _, path := range files {
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				isString := false
				if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "string" {
					isString = true
				}
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							isString = true
						}
					}
					if isString {
						found[name.Name] = true
					}
				}
			}
		}
	}
	for _, v := range []string{"version", "commit"} {
		if !found[v] {
			t.Errorf("cmd/chatd declares no package-level string var %s, which the Dockerfile sets with -X main.%s", v, v)
		}
	}
}

// mainGoFiles returns the non-test Go files of cmd/chatd, skipping when there are none yet.
func mainGoFiles(t *testing.T) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(repoRoot(t), "cmd", "chatd", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range all {
		if !strings.HasSuffix(f, "_test.go") {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		t.Skip("cmd/chatd has no Go files yet")
	}
	return files
}

// dockerignore is the exclusion list of a .dockerignore file.
type dockerignore []struct {
	re      *regexp.Regexp
	exclude bool // false for a !exception
}

// parseDockerignore reads the patterns with Docker's rules: paths relative to the context,
// `*` and `?` within one path element, `**` across any number, `!` re-includes, the last
// matching line wins, and a pattern that matches a folder matches everything below it.
func parseDockerignore(text string) dockerignore {
	var d dockerignore
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		exclude := true
		if rest, ok := strings.CutPrefix(line, "!"); ok {
			exclude, line = false, strings.TrimSpace(rest)
		}
		line = strings.TrimPrefix(filepath.ToSlash(filepath.Clean(line)), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(line); i++ {
			switch c := line[i]; {
			case strings.HasPrefix(line[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(line[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("(/.*)?$")
		d = append(d, struct {
			re      *regexp.Regexp
			exclude bool
		}{regexp.MustCompile(re.String()), exclude})
	}
	return d
}

// excluded reports whether the context-relative path is left out of the build context.
func (d dockerignore) excluded(path string) bool {
	path = filepath.ToSlash(path)
	out := false
	for _, p := range d {
		if p.re.MatchString(path) {
			out = p.exclude
		}
	}
	return out
}

func TestDockerignoreMatcher(t *testing.T) {
	d := parseDockerignore("# c\n.git\n**/node_modules\nweb/dist\n*.md\n!README.md\n**/*_test.go\n")
	tests := []struct {
		path string
		want bool
	}{
		{".git/config", true},
		{"web/node_modules/x/index.js", true},
		{"node_modules/a", true},
		{"web/dist/index.html", true},
		{"web/distance.go", false},
		{"NOTES.md", true},
		{"README.md", false},
		{"docs/guide.md", false},
		{"server/server_test.go", true},
		{"server/server.go", false},
		{"go.mod", false},
	}
	for _, tt := range tests {
		if got := d.excluded(tt.path); got != tt.want {
			t.Errorf("excluded(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

// TestDockerignoreKeepsWhatTheBuildReads checks that the build context keeps every file the
// Dockerfile's stages read: go.mod, go.sum, the web client's package files, and every Go and
// embedded file of ./cmd/chatd's packages in this module (web/dist is built in the image).
func TestDockerignoreKeepsWhatTheBuildReads(t *testing.T) {
	root := repoRoot(t)
	text, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	d := parseDockerignore(string(text))
	for _, p := range []string{"go.mod", "go.sum", "web/package.json", "web/package-lock.json", "cmd/chatd/main.go"} {
		if d.excluded(p) {
			t.Errorf(".dockerignore leaves out %s, which the Dockerfile needs", p)
		}
	}
	for _, p := range []string{".git/HEAD", "web/node_modules/x", "web/dist/app.js", "web/adminui/dist/index.html", "web/adminui/node_modules/z", "e2e/node_modules/y"} {
		if !d.excluded(p) {
			t.Errorf(".dockerignore keeps %s in the build context", p)
		}
	}

	mainGoFiles(t)
	var checked int
	for _, abs := range moduleFilesOfChatd(root) {
		rel, err := filepath.Rel(root, abs)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(filepath.ToSlash(rel), "web/dist/") || strings.HasPrefix(filepath.ToSlash(rel), "web/adminui/dist/") {
			continue // built by the web stage
		}
		checked++
		if d.excluded(rel) {
			t.Errorf(".dockerignore leaves out %s, which `go build ./cmd/chatd` reads", rel)
		}
	}
	if checked == 0 {
		t.Error("go list found no Go files of ./cmd/chatd in this module")
	}
}

// moduleFilesOfChatd lists the Go and embedded files, in this module, of ./cmd/chatd and
// the packages it imports (absolute paths); nil when go list fails.
func moduleFilesOfChatd(root string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-e", "-deps",
		"-f", `{{if and .Module .Module.Main}}{{range .GoFiles}}{{$.Dir}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$.Dir}}/{{.}}{{"\n"}}{{end}}{{end}}`,
		"./cmd/chatd")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return nil
	}
	return strings.Fields(string(out))
}
