package kubernetes

import (
	"bufio"
	"bytes"
	"encoding/json"
	"go/version"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	appsv1 "k8s.io/api/apps/v1"
)

// root is the repository's root, the Dockerfile's build context.
const root = "../.."

// stage is one stage of a Dockerfile: its base, its name and its
// instructions, lower case, each with its arguments.
type stage struct {
	base, name   string
	instructions []instruction
}

type instruction struct {
	cmd   string
	args  []string
	flags []string
	json  bool // exec form: ["a", "b"]
}

// last returns the stage's last instruction cmd, or false.
func (s stage) last(cmd string) (instruction, bool) {
	for i := len(s.instructions) - 1; i >= 0; i-- {
		if s.instructions[i].cmd == cmd {
			return s.instructions[i], true
		}
	}
	return instruction{}, false
}

// parseDockerfile reads the Dockerfile with BuildKit's own parser.
func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	var stages []stage
	for _, n := range res.AST.Children {
		in := instruction{cmd: strings.ToLower(n.Value), flags: n.Flags, json: n.Attributes["json"]}
		for a := n.Next; a != nil; a = a.Next {
			in.args = append(in.args, a.Value)
		}
		switch {
		case in.cmd == "from":
			s := stage{base: in.args[0]}
			if len(in.args) == 3 && strings.EqualFold(in.args[1], "as") {
				s.name = in.args[2]
			}
			stages = append(stages, s)
		case len(stages) == 0:
			if in.cmd != "arg" {
				t.Fatalf("Dockerfile: %s before FROM", in.cmd)
			}
		default:
			stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, in)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a build stage and the image's", len(stages))
	}
	return stages
}

// goBuild is CI's build of the binary: the line of .ci/run that runs go
// build, which the Dockerfile and the README's Building section must run
// to the letter.
func goBuild(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, ".ci/run"))
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for line := range strings.Lines(string(b)) {
		if line = strings.TrimSpace(line); strings.Contains(line, "go build") && !strings.HasPrefix(line, "#") {
			found = append(found, line)
		}
	}
	if len(found) != 1 {
		t.Fatalf(".ci/run: %d go build lines %q, want the release build alone", len(found), found)
	}
	return found[0]
}

// TestDockerfile checks the Dockerfile, which no machine of the project can
// build, against what does run: its Go build is the one CI runs and the
// README shows, with go.mod's Go, static; the image runs that binary as a
// non-root user, with the arguments and ports the manifests use.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	build, image := stages[0], stages[len(stages)-1]
	want := goBuild(t)

	// The build: CI's command, in a golang image of go.mod's Go.
	var run instruction
	for _, in := range build.instructions {
		if in.cmd == "run" && strings.Contains(strings.Join(in.args, " "), "go build") {
			run = in
		}
	}
	if run.json || len(run.args) != 1 || run.args[0] != want {
		t.Errorf("Dockerfile builds with %q, CI with %q", run.args, want)
	}
	if !strings.HasPrefix(want, "CGO_ENABLED=0 ") {
		t.Errorf("the release build %q is not static (CGO_ENABLED=0)", want)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "`"+want+"`") {
		t.Errorf("the README's Building section does not show CI's build, `%s`", want)
	}
	m := regexp.MustCompile(`^golang:(\d+\.\d+(?:\.\d+)?)-`).FindStringSubmatch(build.base)
	goMod := goDirective(t)
	if m == nil {
		t.Errorf("the build stage's base %q is not a golang image pinned by version", build.base)
	} else if v := "go" + m[1]; version.Lang(v) != version.Lang(goMod) || version.Compare(v, goMod) < 0 {
		t.Errorf("the build stage's Go %s is not go.mod's %s", v, goMod)
	}

	// The image: distroless, the binary where ENTRYPOINT runs it, as a
	// numeric non-root user.
	if image.base != "gcr.io/distroless/static-debian12:nonroot" && image.base != "scratch" {
		t.Errorf("the image's base is %s", image.base)
	}
	entry, _ := image.last("entrypoint")
	if !entry.json || !slices.Equal(entry.args, []string{"/coredns"}) {
		t.Errorf("ENTRYPOINT %q, want the exec form of /coredns, as CoreDNS's image", entry.args)
	}
	workdir, _ := build.last("workdir")
	out := regexp.MustCompile(`-o (\S+)`).FindStringSubmatch(want)
	cp, _ := image.last("copy")
	if len(workdir.args) != 1 || out == nil || !slices.Equal(cp.flags, []string{"--from=" + build.name}) ||
		!slices.Equal(cp.args, []string{path.Join(workdir.args[0], out[1]), "/coredns"}) {
		t.Errorf("the image copies %q %q; the build writes %v in %q", cp.flags, cp.args, out, workdir.args)
	}
	user, _ := image.last("user")
	if len(user.args) != 1 || !regexp.MustCompile(`^[1-9][0-9]*(:[0-9]+)?$`).MatchString(user.args[0]) {
		t.Errorf("USER %q, want a numeric user other than root", user.args)
	}
	var exposed []string
	for _, in := range image.instructions {
		if in.cmd == "expose" {
			exposed = append(exposed, in.args...)
		}
	}
	for _, p := range []string{"53/udp", "53/tcp", "9153/tcp", "9254/tcp"} {
		if !slices.Contains(exposed, p) {
			t.Errorf("the image does not expose %s: %q", p, exposed)
		}
	}

	// The Deployment patch runs the image's binary with the image's
	// arguments, and names the image the README builds.
	cmd, _ := image.last("cmd")
	var d appsv1.Deployment
	decode(t, "deployment-patch.yaml", &d)
	c := d.Spec.Template.Spec.Containers[0]
	if !cmd.json || !slices.Equal(c.Args, cmd.args) || len(c.Command) != 0 && !slices.Equal(c.Command, entry.args) {
		t.Errorf("the patch runs %q %q; the image %q %q", c.Command, c.Args, entry.args, cmd.args)
	}
	if i := slices.Index(c.Args, "-conf"); i < 0 || i+1 == len(c.Args) || path.Dir(c.Args[i+1]) != "/etc/coredns" {
		t.Errorf("the patch's arguments %q do not read the Corefile where Kubernetes' CoreDNS mounts the ConfigMap, /etc/coredns", c.Args)
	}
	if !strings.Contains(string(readme), "docker build -t "+c.Image+" .") {
		t.Errorf("the README does not build the patch's image, %s", c.Image)
	}
}

// goDirective returns go.mod's go line, as go1.N.P.
func goDirective(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for s := bufio.NewScanner(f); s.Scan(); {
		if v, ok := strings.CutPrefix(s.Text(), "go "); ok {
			return "go" + strings.TrimSpace(v)
		}
	}
	t.Fatal("go.mod has no go line")
	return ""
}

// TestDockerignore checks that the build context the Dockerfile copies,
// less .dockerignore, holds every file the build reads: the Go and
// embedded files of the module's packages that cmd/coredns-fluxguard
// builds from (as CI's static build selects them), go.mod and go.sum; and
// that it leaves out the caches.
func TestDockerignore(t *testing.T) {
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(file string) bool {
		ok, err := pm.MatchesOrParentMatches(file)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "list", "-deps", "-json=Dir,GoFiles,EmbedFiles,Module", "./cmd/coredns-fluxguard")
	cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"go.mod", "go.sum"}
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p struct {
			Dir                 string
			GoFiles, EmbedFiles []string
			Module              *struct{ Main bool }
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || !p.Module.Main {
			continue
		}
		dir, err := filepath.Rel(abs, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range append(p.GoFiles, p.EmbedFiles...) {
			files = append(files, filepath.ToSlash(filepath.Join(dir, name)))
		}
	}
	if len(files) < 10 {
		t.Fatalf("go list found %d files of the module: %q", len(files), files)
	}
	for _, file := range files {
		if excluded(file) {
			t.Errorf(".dockerignore leaves out %s, which the build reads", file)
		}
	}
	for _, file := range []string{".git/HEAD", ".cache/ip-location-db-asn/asn-ipv4.csv", "coredns"} {
		if !excluded(file) {
			t.Errorf(".dockerignore keeps %s in the build context", file)
		}
	}
}
