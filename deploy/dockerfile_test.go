package deploy

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// There is no Docker engine to build the image with, so the Dockerfile is checked as text:
// the instructions the image's properties depend on.

type instruction struct {
	Cmd  string // upper-cased: FROM, RUN, COPY...
	Args string
	Line int
}

type stage struct {
	Name, Image string
	Insts       []instruction
}

// parseDockerfile splits a Dockerfile into stages of instructions, joining continued lines
// and dropping comments and blank lines.
func parseDockerfile(t *testing.T, data string) (args map[string]string, stages []*stage) {
	t.Helper()
	args = map[string]string{}
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(strings.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		cmd, rest, _ := strings.Cut(cur.String(), " ")
		in := instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(rest), Line: start}
		cur.Reset()
		switch {
		case in.Cmd == "FROM":
			f := strings.Fields(in.Args)
			st := &stage{Image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.Name = f[2]
			}
			stages = append(stages, st)
		case len(stages) == 0 && in.Cmd == "ARG":
			k, v, _ := strings.Cut(in.Args, "=")
			args[k] = v
		case len(stages) == 0:
			t.Errorf("Dockerfile:%d: %s before the first FROM", in.Line, in.Cmd)
		default:
			stages[len(stages)-1].Insts = append(stages[len(stages)-1].Insts, in)
		}
	}
	return args, stages
}

func (s *stage) find(cmd string) []instruction {
	var out []instruction
	for _, in := range s.Insts {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	args, stages := parseDockerfile(t, string(data))
	if len(stages) < 2 {
		t.Fatalf("%d stages: want a multi-stage build (build, then a small final image)", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	// The build stage: the Go toolchain go.mod asks for, a static binary of cmd/palimpsest.
	goDirective := goModGoVersion(t) // e.g. 1.26.0
	majorMinor := strings.Join(strings.SplitN(goDirective, ".", 3)[:2], ".")
	image := os.Expand(build.Image, func(k string) string { return args[k] })
	if !strings.HasPrefix(image, "golang:"+majorMinor) {
		t.Errorf("build stage FROM %s (%s): want golang:%s.x, the Go of go.mod (go %s)", build.Image, image, majorMinor, goDirective)
	}
	var env, runs strings.Builder
	for _, in := range build.find("ENV") {
		env.WriteString(in.Args + " ")
	}
	for _, in := range build.find("RUN") {
		runs.WriteString(in.Args + "\n")
	}
	if !regexp.MustCompile(`(^|\s)CGO_ENABLED=0(\s|$)`).MatchString(env.String() + " " + runs.String()) {
		t.Error("build stage does not set CGO_ENABLED=0: the binary would not be static")
	}
	if !regexp.MustCompile(`(^|\s)GOTOOLCHAIN=local(\s|$)`).MatchString(env.String()) {
		t.Error("build stage does not set GOTOOLCHAIN=local: go could fetch another toolchain")
	}
	if !regexp.MustCompile(`go build .*-o /out/palimpsest \./cmd/palimpsest`).MatchString(runs.String()) {
		t.Errorf("build stage does not `go build -o /out/palimpsest ./cmd/palimpsest`:\n%s", runs.String())
	}

	// The final stage: small, no shell, non-root, the binary as entrypoint.
	if !strings.HasPrefix(final.Image, "gcr.io/distroless/static") && final.Image != "scratch" {
		t.Errorf("final image %s: want distroless/static (or scratch with CA certificates)", final.Image)
	}
	for _, in := range final.Insts {
		switch in.Cmd {
		case "RUN":
			t.Errorf("Dockerfile:%d: RUN in the final stage (it has no shell)", in.Line)
		case "ADD":
			t.Errorf("Dockerfile:%d: ADD in the final stage; COPY --from the build stage only", in.Line)
		case "COPY":
			if !strings.Contains(in.Args, "--from="+build.Name) {
				t.Errorf("Dockerfile:%d: COPY %s: the final stage takes files from the build stage only", in.Line, in.Args)
			}
		}
	}
	if !slices.ContainsFunc(final.find("COPY"), func(in instruction) bool {
		return strings.HasPrefix(in.Args, "--from="+build.Name+" /out/palimpsest /palimpsest")
	}) {
		t.Error("final stage does not COPY --from the build stage /out/palimpsest to /palimpsest")
	}
	users := final.find("USER")
	if len(users) == 0 {
		t.Error("final stage has no USER: the container would run as root")
	} else if u, _, _ := strings.Cut(users[len(users)-1].Args, ":"); u == "root" || u == "0" || u == "" {
		t.Errorf("final stage USER %q is root", users[len(users)-1].Args)
	} else if u != "65532" {
		// Kubernetes checks runAsNonRoot against a numeric user; k8s/ sets runAsUser 65532.
		t.Errorf("final stage USER %q: want the numeric 65532 (distroless nonroot) that k8s/ runs as", u)
	}
	eps := final.find("ENTRYPOINT")
	var ep []string
	if len(eps) == 0 || json.Unmarshal([]byte(eps[len(eps)-1].Args), &ep) != nil || !slices.Equal(ep, []string{"/palimpsest"}) {
		t.Errorf("final stage ENTRYPOINT %v: want the exec form [\"/palimpsest\"], so a subcommand is the only argument", eps)
	}
	if !slices.ContainsFunc(final.find("ENV"), func(in instruction) bool {
		return strings.Contains(in.Args, envLogFormat+"=json")
	}) {
		t.Errorf("final stage does not set %s=json", envLogFormat)
	}
}

// goModGoVersion returns go.mod's go directive.
func goModGoVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+(\.\d+)?)\s*$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

// TestDockerignoreKeepsTheBuild checks that the build context still holds every file
// `go build ./cmd/palimpsest` reads: go.mod, go.sum, and each package's Go and embedded files.
func TestDockerignoreKeepsTheBuild(t *testing.T) {
	root := repoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	ignore := parseDockerignore(string(data))
	for _, must := range []string{".git/config", "palimpsest"} {
		if !ignore.excludes(must) {
			t.Errorf(".dockerignore sends %s to the build", must)
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if not .Standard}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .EmbedFiles}} {{.}}{{end}}{{end}}`, "./cmd/palimpsest")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	files := []string{"go.mod", "go.sum"}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		rel, err := filepath.Rel(root, f[0])
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a dependency from the module cache
		}
		for _, name := range f[1:] {
			files = append(files, filepath.ToSlash(filepath.Join(rel, name)))
		}
	}
	if len(files) < 5 {
		t.Fatalf("go list found only %v", files)
	}
	for _, f := range files {
		if ignore.excludes(f) {
			t.Errorf(".dockerignore leaves %s out of the build context; `go build ./cmd/palimpsest` reads it", f)
		}
	}
}

// dockerignore is a .dockerignore: patterns relative to the context root, matched like
// Docker does (filepath.Match per path element, ** for any number of them, ! to re-include;
// the last matching pattern wins, and a directory that is excluded excludes what is in it).
type dockerignore []struct {
	re      *regexp.Regexp
	include bool
}

func parseDockerignore(data string) dockerignore {
	var d dockerignore
	for line := range strings.Lines(data) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		include := strings.HasPrefix(line, "!")
		p := filepath.ToSlash(filepath.Clean(strings.TrimPrefix(strings.TrimPrefix(line, "!"), "/")))
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case p[i] == '*':
				re.WriteString("[^/]*")
			case p[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		re.WriteString("$")
		d = append(d, struct {
			re      *regexp.Regexp
			include bool
		}{regexp.MustCompile(re.String()), include})
	}
	return d
}

// excludes reports whether path (slash-separated, relative to the context) is left out.
func (d dockerignore) excludes(path string) bool {
	excluded := false
	for _, p := range d {
		// The pattern matches the path or one of its parent directories.
		for prefix := path; ; {
			if p.re.MatchString(prefix) {
				excluded = !p.include
				break
			}
			i := strings.LastIndex(prefix, "/")
			if i < 0 {
				break
			}
			prefix = prefix[:i]
		}
	}
	return excluded
}
