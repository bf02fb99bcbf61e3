package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// ManagerBinary builds the manager (./cmd/gitops-reverser) once per test
// process, as a user would with `go build`, and returns its path. Suites
// that stop, kill and restart the operator run this binary as its own
// process.
func ManagerBinary() (string, error) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gitops-reverser-bin-")
		if err != nil {
			buildErr = fmt.Errorf("making a folder for the manager binary: %w", err)
			return
		}
		buildPath = filepath.Join(dir, "gitops-reverser")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/gitops-reverser")
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building the manager: %w: %s", err, out)
		}
	})
	return buildPath, buildErr
}

// ProcessOptions configure a manager process.
type ProcessOptions struct {
	// Kubeconfig the manager uses (e.g. one from Env.WriteKubeconfig).
	Kubeconfig string
	// WorkDir is the manager's --work-dir; keep it across restarts to
	// keep its clones, journal and webhook certificates.
	WorkDir string
	// WebhookPort is the webhook's port on 127.0.0.1; 0 picks a free one.
	// Keep it across restarts so that the webhook configuration stays
	// right while the manager is down.
	WebhookPort int
	// Args are further flags.
	Args []string
	// LogPath receives the manager's output (appended); empty uses
	// WorkDir/manager.log.
	LogPath string
	// Env are further environment variables (KEY=value), e.g. GOGC.
	Env []string
}

// ManagerProcess is the built manager running as its own process.
type ManagerProcess struct {
	// WebhookURL is the URL the API server calls.
	WebhookURL string
	// WebhookPort is the webhook's port.
	WebhookPort int
	// ProbeAddr serves /healthz and /readyz.
	ProbeAddr string
	// MetricsAddr serves /metrics.
	MetricsAddr string
	// LogPath holds the manager's output.
	LogPath string

	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error
}

// StartManagerProcess starts the manager binary against the control plane
// with the webhook on 127.0.0.1 (its self-signed certificate in the work
// dir), metrics and probes on free ports.
func StartManagerProcess(o ProcessOptions) (*ManagerProcess, error) {
	bin, err := ManagerBinary()
	if err != nil {
		return nil, err
	}
	if o.WebhookPort == 0 {
		if o.WebhookPort, err = FreePort(); err != nil {
			return nil, err
		}
	}
	probePort, err := FreePort()
	if err != nil {
		return nil, err
	}
	metricsPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("making the work dir: %w", err)
	}
	if o.LogPath == "" {
		o.LogPath = filepath.Join(o.WorkDir, "manager.log")
	}
	logf, err := os.OpenFile(o.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the manager log: %w", err)
	}
	p := &ManagerProcess{
		WebhookURL:  fmt.Sprintf("https://127.0.0.1:%d/validate", o.WebhookPort),
		WebhookPort: o.WebhookPort,
		ProbeAddr:   "127.0.0.1:" + strconv.Itoa(probePort),
		MetricsAddr: "127.0.0.1:" + strconv.Itoa(metricsPort),
		LogPath:     o.LogPath,
		log:         logf,
		done:        make(chan struct{}),
	}
	args := append([]string{
		"--kubeconfig", o.Kubeconfig,
		"--work-dir", o.WorkDir,
		"--webhook-port", strconv.Itoa(o.WebhookPort),
		"--webhook-url", p.WebhookURL,
		"--health-probe-bind-address", p.ProbeAddr,
		"--metrics-bind-address", p.MetricsAddr,
		"--zap-devel",
	}, o.Args...)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.Env = append(append(os.Environ(), "KUBECONFIG="+o.Kubeconfig), o.Env...)
	if err := p.cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("starting the manager: %w", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	return p, nil
}

// Ready reports whether the manager answers /readyz.
func (p *ManagerProcess) Ready(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.ProbeAddr+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// WaitReady waits until the manager answers /readyz, or fails when it
// exits or timeout passes.
func (p *ManagerProcess) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.Exited() {
			return fmt.Errorf("the manager exited: %v (log: %s)", p.err, p.LogPath)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ok := p.Ready(ctx)
		cancel()
		if ok {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the manager was not ready within %s (log: %s)", timeout, p.LogPath)
}

// Exited reports whether the process has ended.
func (p *ManagerProcess) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill ends the manager with SIGKILL, as an OOM kill or a node loss
// would, and waits for it.
func (p *ManagerProcess) Kill() error {
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing the manager: %w", err)
	}
	<-p.done
	return nil
}

// Stop ends the manager with SIGTERM, as a rollout would, and waits up to
// timeout for it to finish its work before killing it.
func (p *ManagerProcess) Stop(timeout time.Duration) error {
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stopping the manager: %w", err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		_ = p.Kill()
		return fmt.Errorf("the manager did not stop within %s; killed it", timeout)
	}
}

// PID is the process id of the manager, e.g. to read /proc/<pid>/stat.
func (p *ManagerProcess) PID() int { return p.cmd.Process.Pid }

// Logs returns what the manager has written so far.
func (p *ManagerProcess) Logs() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return ""
	}
	return string(b)
}
