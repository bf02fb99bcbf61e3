package readme

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
)

// block is one marked fenced block of README.md.
type block struct {
	marker string
	text   string
	line   int
}

const (
	markTerminal1 = "terminal 1"
	markTerminal2 = "terminal 2"
	markRepeat    = "terminal 2, repeat until the output below"
	markOutput    = "output"
)

var markerRE = regexp.MustCompile(`^<!--\s*readme-test:\s*(.*?)\s*-->\s*$`)

// readBlocks returns README.md's marked blocks in order.
func readBlocks(readme string) ([]block, error) {
	var out []block
	lines := strings.Split(readme, "\n")
	for i := 0; i < len(lines); i++ {
		m := markerRE.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		switch m[1] {
		case markTerminal1, markTerminal2, markRepeat, markOutput:
		default:
			return nil, fmt.Errorf("README.md:%d: unknown readme-test marker %q", i+1, m[1])
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```") {
			return nil, fmt.Errorf("README.md:%d: a readme-test marker must be followed by a fenced block", i+1)
		}
		var body []string
		j := i + 2
		for ; j < len(lines) && !strings.HasPrefix(lines[j], "```"); j++ {
			body = append(body, lines[j])
		}
		if j == len(lines) {
			return nil, fmt.Errorf("README.md:%d: unterminated fenced block", i+2)
		}
		out = append(out, block{marker: m[1], text: strings.Join(body, "\n"), line: i + 2})
		i = j
	}
	return out, nil
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freshClone copies what a clone of the working tree holds (tracked and
// untracked, not ignored files) to dir, and points dir/bin/k8s at the
// built control-plane binaries, as `make controlplane` would have left
// them.
func freshClone(root, dir string) {
	GinkgoHelper()
	ls := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	ls.Dir = root
	out, err := ls.Output()
	Expect(err).NotTo(HaveOccurred(), "git ls-files")
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, rel)
		fi, err := os.Lstat(src)
		if os.IsNotExist(err) {
			continue // deleted in the working tree, not committed yet
		}
		Expect(err).NotTo(HaveOccurred())
		if !fi.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(src)
		Expect(err).NotTo(HaveOccurred())
		dst := filepath.Join(dir, rel)
		Expect(os.MkdirAll(filepath.Dir(dst), 0o755)).To(Succeed())
		Expect(os.WriteFile(dst, data, fi.Mode().Perm())).To(Succeed())
	}
	assets, err := controlplane.AssetsDir()
	Expect(err).NotTo(HaveOccurred())
	assets, err = filepath.EvalSymlinks(assets)
	Expect(err).NotTo(HaveOccurred())
	Expect(os.MkdirAll(filepath.Join(dir, "bin"), 0o755)).To(Succeed())
	Expect(os.Symlink(assets, filepath.Join(dir, "bin", "k8s"))).To(Succeed())
}

// printed returns the value make run printed after label ("kubeconfig:").
func printed(output, label string) string {
	sc := bufio.NewScanner(strings.NewReader(output))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, label); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// userEnv is the environment of the test without what would make `make
// run` leave local mode (a kubeconfig) or change what the README's lines
// do; KUBECONFIG names a file that does not exist, as on a machine
// without one.
func userEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KUBECONFIG=") || strings.HasPrefix(kv, "RUN_ARGS=") || strings.HasPrefix(kv, "MAKEFLAGS=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "KUBECONFIG="+filepath.Join(dir, "no-kubeconfig"))
}

var _ = Describe("README quick start", func() {
	It("runs make run, the kubectl lines and git log exactly as README.md writes them", func() {
		root := controlplane.RepoRoot()
		readme, err := os.ReadFile(filepath.Join(root, "README.md"))
		Expect(err).NotTo(HaveOccurred())
		blocks, err := readBlocks(string(readme))
		Expect(err).NotTo(HaveOccurred())
		Expect(blocks).NotTo(BeEmpty(), "README.md marks no readme-test blocks")
		Expect(blocks[0].marker).To(Equal(markTerminal1), "the quick start begins with terminal 1")
		outputs := 0
		for _, b := range blocks {
			if b.marker == markOutput {
				outputs++
			}
		}
		Expect(outputs).To(BeNumerically(">", 0), "the quick start shows an output the test can check (a commit in git log)")

		dir := GinkgoT().TempDir()
		freshClone(root, dir)
		env := userEnv(dir)

		By("terminal 1: " + blocks[0].text)
		out := &syncBuffer{}
		run := exec.Command("bash", "-euo", "pipefail", "-c", blocks[0].text)
		run.Dir, run.Env, run.Stdout, run.Stderr = dir, env, out, out
		// Its own process group, so that the Ctrl-C below reaches make,
		// go run and the operator, as a terminal's would.
		run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		Expect(run.Start()).To(Succeed())
		exited := make(chan error, 1)
		go func() { exited <- run.Wait() }()
		DeferCleanup(func() {
			_ = syscall.Kill(-run.Process.Pid, syscall.SIGINT)
			select {
			case <-exited:
			case <-time.After(90 * time.Second):
				_ = syscall.Kill(-run.Process.Pid, syscall.SIGKILL)
				<-exited
			}
			if CurrentSpecReport().Failed() {
				tail := out.String()
				if len(tail) > 20000 {
					tail = tail[len(tail)-20000:]
				}
				fmt.Fprintf(GinkgoWriter, "output of %q (tail):\n%s\n", blocks[0].text, tail)
			}
		})
		// The first run builds the binary; a loaded machine is slow.
		Eventually(func(g Gomega) {
			select {
			case err := <-exited:
				exited <- err
				StopTrying(fmt.Sprintf("%q ended before it printed the repository (%v)", blocks[0].text, err)).Now()
			default:
			}
			g.Expect(printed(out.String(), "repository:")).NotTo(BeEmpty())
		}).WithTimeout(10 * time.Minute).WithPolling(time.Second).Should(Succeed())

		kubeconfig := printed(out.String(), "kubeconfig:")
		repo := printed(out.String(), "repository:")
		Expect(filepath.Join(dir, kubeconfig)).To(BeAnExistingFile(), "the kubeconfig make run printed")
		Expect(filepath.Join(dir, repo, "HEAD")).To(BeAnExistingFile(), "the repository make run printed")
		var terminal2 []string
		for _, b := range blocks[1:] {
			if b.marker != markOutput {
				terminal2 = append(terminal2, b.text)
			}
		}
		all := strings.Join(terminal2, "\n")
		Expect(all).To(ContainSubstring(kubeconfig), "the second terminal uses the kubeconfig make run printed")
		Expect(all).To(ContainSubstring(repo), "the second terminal reads the repository make run printed")

		var exports []string
		for i := 1; i < len(blocks); i++ {
			b := blocks[i]
			script := strings.Join(append(append([]string{}, exports...), b.text), "\n")
			shell := func() (string, error) {
				cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
				cmd.Dir, cmd.Env = dir, env
				o, err := cmd.CombinedOutput()
				return string(o), err
			}
			switch b.marker {
			case markTerminal1:
				Fail(fmt.Sprintf("README.md:%d: a second terminal 1 block", b.line))
			case markOutput:
				Fail(fmt.Sprintf("README.md:%d: an output block that follows no repeated block", b.line))
			case markTerminal2:
				By("terminal 2: " + b.text)
				o, err := shell()
				Expect(err).NotTo(HaveOccurred(), "README.md:%d:\n%s", b.line, o)
			case markRepeat:
				Expect(i+1 < len(blocks) && blocks[i+1].marker == markOutput).To(BeTrue(),
					"README.md:%d: a repeated block is followed by its output block", b.line)
				want := blocks[i+1]
				By("terminal 2, until its output shows README.md's: " + b.text)
				Eventually(func(g Gomega) {
					o, err := shell()
					g.Expect(err).NotTo(HaveOccurred(), o)
					for _, line := range strings.Split(want.text, "\n") {
						if line = strings.TrimSpace(line); line != "" {
							g.Expect(o).To(ContainSubstring(line), "README.md:%d", want.line)
						}
					}
				}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
				i++ // the output block is checked
			}
			for _, line := range strings.Split(b.text, "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "export ") {
					exports = append(exports, line)
				}
			}
		}
	})
})
