package packaging

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
)

// dockerBuild is what the Dockerfile's build stage does: the files it
// copies into its WORKDIR and the `go build` command it runs.
type dockerBuild struct {
	// buildPlatformFrom is true when the build stage runs on
	// $BUILDPLATFORM (cross-compiling, no emulation).
	buildPlatformFrom bool
	// copies are the sources of the stage's COPY lines, relative to the
	// build context.
	copies []string
	// env are the assignments before `go build` (unexpanded).
	env []string
	// args follow `go build` (unexpanded).
	args []string
	// finalUser is the USER of the last stage.
	finalUser string
	// finalBase is the image of the last stage.
	finalBase string
}

// parseDockerfile reads the Dockerfile's instructions, joining continued
// lines and dropping comments.
func parseDockerfile(text string) (dockerBuild, error) {
	var d dockerBuild
	var lines []string
	var cur strings.Builder
	for _, l := range strings.Split(text, "\n") {
		t := strings.TrimSpace(l)
		if cur.Len() == 0 && (t == "" || strings.HasPrefix(t, "#")) {
			continue
		}
		if strings.HasSuffix(t, "\\") {
			cur.WriteString(strings.TrimSuffix(t, "\\") + " ")
			continue
		}
		cur.WriteString(t)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	stage := -1
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		words, err := shellWords(rest)
		if err != nil {
			return d, fmt.Errorf("%q: %w", l, err)
		}
		switch strings.ToUpper(instr) {
		case "FROM":
			stage++
			d.finalUser = ""
			for _, w := range words {
				if strings.HasPrefix(w, "--platform=") {
					if stage == 0 {
						d.buildPlatformFrom = w == "--platform=$BUILDPLATFORM"
					}
				} else if !strings.HasPrefix(w, "--") {
					d.finalBase = w
					break
				}
			}
		case "COPY":
			if stage != 0 || len(words) < 2 || strings.HasPrefix(words[0], "--from") {
				continue
			}
			d.copies = append(d.copies, words[:len(words)-1]...)
		case "RUN":
			i := 0
			for i < len(words) && strings.HasPrefix(words[i], "--") {
				i++
			}
			var env []string
			for i < len(words) && strings.Contains(words[i], "=") {
				env = append(env, words[i])
				i++
			}
			if stage == 0 && i+1 < len(words) && words[i] == "go" && words[i+1] == "build" {
				if d.args != nil {
					return d, errors.New("two `go build` lines in the build stage")
				}
				d.env, d.args = env, words[i+2:]
			}
		case "USER":
			d.finalUser = rest
		}
	}
	if d.args == nil {
		return d, errors.New("no `RUN ... go build` in the first stage")
	}
	return d, nil
}

// shellWords splits s as a POSIX shell would for simple words with single
// and double quotes (no expansion).
func shellWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				w.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quote")
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// copyContext copies the Dockerfile's COPY sources from the repository
// into dir, as `docker build` puts them into its WORKDIR: only what the
// Dockerfile copies is there, so a package it forgot fails the build here
// too.
func copyContext(root, dir string, sources []string) error {
	for _, src := range sources {
		from := filepath.Join(root, filepath.FromSlash(strings.TrimSuffix(src, "/")))
		err := filepath.WalkDir(from, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			to := filepath.Join(dir, rel)
			if e.IsDir() {
				return os.MkdirAll(to, 0o755)
			}
			if !e.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, 0o644)
		})
		if err != nil {
			return fmt.Errorf("copying %s: %w", src, err)
		}
	}
	return nil
}

func TestDockerfile_goBuild_staticBinaryPerArch(t *testing.T) {
	t.Parallel()
	root := controlplane.RepoRoot()
	text, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDockerfile(string(text))
	if err != nil {
		t.Fatalf("parsing the Dockerfile: %v", err)
	}
	if !d.buildPlatformFrom {
		t.Errorf("the build stage does not run on --platform=$BUILDPLATFORM (a multi-arch build would emulate the compiler)")
	}
	if d.finalUser == "" || strings.HasPrefix(d.finalUser, "0") || strings.HasPrefix(d.finalUser, "root") {
		t.Errorf("the final stage's USER is %q, want a non-root numeric user", d.finalUser)
	}
	if !strings.Contains(d.finalBase, "distroless/static") {
		t.Errorf("the final stage is %q, want a distroless static image (no libc for a static binary)", d.finalBase)
	}
	ctx := t.TempDir()
	if err := copyContext(root, ctx, d.copies); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		arch    string
		machine elf.Machine
	}{
		{"amd64", elf.EM_X86_64},
		{"arm64", elf.EM_AARCH64},
	}
	for _, c := range cases {
		t.Run(c.arch, func(t *testing.T) {
			// The two cross builds are independent; running them at once
			// halves the wait on a machine with spare cores.
			t.Parallel()
			vars := map[string]string{"TARGETOS": "linux", "TARGETARCH": c.arch}
			expand := func(s string) string {
				return os.Expand(s, func(k string) string { return vars[k] })
			}
			out := filepath.Join(t.TempDir(), "gitops-reverser")
			env := map[string]string{}
			for _, kv := range d.env {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = expand(v)
			}
			if env["CGO_ENABLED"] != "0" || env["GOOS"] != "linux" || env["GOARCH"] != c.arch {
				t.Fatalf("the go build line sets %v, want CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH", d.env)
			}
			args := []string{"build"}
			for i := 0; i < len(d.args); i++ {
				a := expand(d.args[i])
				if a == "-o" && i+1 < len(d.args) {
					args = append(args, "-o", out)
					i++
					continue
				}
				args = append(args, a)
			}
			cmd := exec.Command("go", args...)
			cmd.Dir = ctx
			cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
			for k, v := range env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go %s (%v): %v\n%s", strings.Join(args, " "), d.env, err, b)
			}
			checkStaticELF(t, out, c.machine)
		})
	}
}

// checkStaticELF fails t unless path is a 64-bit, statically linked,
// stripped ELF executable for machine.
func checkStaticELF(t *testing.T, path string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("reading the binary: %v", err)
	}
	defer func() { _ = f.Close() }()
	if f.Machine != machine || f.Class != elf.ELFCLASS64 || f.Type != elf.ET_EXEC {
		t.Errorf("the binary is %v %v %v, want %v ELFCLASS64 ET_EXEC", f.Machine, f.Class, f.Type, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %v program header: it is dynamically linked", p.Type)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary needs libraries %v (%v), want none", libs, err)
	}
	if f.Section(".symtab") != nil {
		t.Errorf("the binary has a symbol table: -ldflags \"-s -w\" did not reach the build")
	}
}

func TestParseDockerfile_parse_cases(t *testing.T) {
	cases := []struct {
		name    string
		text    string
		wantErr bool
		args    string
		env     string
		copies  string
	}{
		{
			name: "continued lines, mounts and quotes",
			text: "FROM --platform=$BUILDPLATFORM golang AS b\nCOPY a/ b/ ./\n# c\nRUN --mount=type=cache,target=/x \\\n  CGO_ENABLED=0 GOARCH=$TARGETARCH \\\n  go build -ldflags \"-s -w\" -o /o ./cmd/x\nFROM scratch\nCOPY --from=b /o /o\nUSER 1:1\n",
			args: "-ldflags|-s -w|-o|/o|./cmd/x", env: "CGO_ENABLED=0|GOARCH=$TARGETARCH", copies: "a/|b/",
		},
		{name: "no go build", text: "FROM golang\nRUN go vet ./...\n", wantErr: true},
		{name: "unterminated quote", text: "FROM golang\nRUN go build -ldflags \"-s\n", wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := parseDockerfile(c.text)
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			if c.wantErr {
				return
			}
			if got := strings.Join(d.args, "|"); got != c.args {
				t.Errorf("args = %q, want %q", got, c.args)
			}
			if got := strings.Join(d.env, "|"); got != c.env {
				t.Errorf("env = %q, want %q", got, c.env)
			}
			if got := strings.Join(d.copies, "|"); got != c.copies {
				t.Errorf("copies = %q, want %q", got, c.copies)
			}
			if !d.buildPlatformFrom || d.finalUser != "1:1" || d.finalBase != "scratch" {
				t.Errorf("got %+v", d)
			}
		})
	}
}
