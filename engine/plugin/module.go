package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// ABI v1 names and constants (plugins/README.md).
const (
	abiVersion       = 1
	exportMemory     = "memory"
	exportABIVersion = "reverser_abi_version"
	exportAlloc      = "alloc"
	exportFree       = "free"
	exportSanitize   = "sanitize"
	exportLayout     = "layout"
	// errorFlag in the length half of a result marks an error message.
	errorFlag = 1 << 31
	// maxErrorMessage bounds the error text read from a module.
	maxErrorMessage = 4096
	// maxPathBytes bounds a layout path.
	maxPathBytes = 4096
)

// CallContext describes the change a call is made for; modules receive it as
// the "context" member of their input.
type CallContext struct {
	// Operation is CREATE, UPDATE, DELETE or RECONCILE.
	Operation string `json:"operation,omitempty"`
	// User is the Kubernetes user who made the change, or "unknown".
	User string `json:"user,omitempty"`
	// Resource identifies the object.
	Resource Resource `json:"resource"`
}

// Resource identifies the object of a call.
type Resource struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version,omitempty"`
	Resource  string `json:"resource,omitempty"`
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
}

// Module is one compiled plugin with its pool of instances, shared by every
// Load of the same digest. It is safe for concurrent use.
type Module struct {
	host        *Host
	digest      string
	compiled    wazero.CompiledModule
	hasSanitize bool
	hasLayout   bool

	// slots holds one token per live instance, so at most PoolSize exist.
	slots chan struct{}
	// idle holds warm instances ready for a call.
	idle chan *instance

	refs int // guarded by host.mu

	mu     sync.Mutex // guards closed and pushes to idle
	closed bool
}

// Digest returns the module's sha256 digest (hex).
func (m *Module) Digest() string { return m.digest }

// HasSanitize reports whether the module exports sanitize.
func (m *Module) HasSanitize() bool { return m.hasSanitize }

// HasLayout reports whether the module exports layout.
func (m *Module) HasLayout() bool { return m.hasLayout }

// Release gives back the reference taken by Host.Load; the last release
// closes the module's instances.
func (m *Module) Release(ctx context.Context) { m.host.release(ctx, m) }

// Sanitize runs the module's sanitizer on object with the rule's settings
// (JSON, or nil) and returns the sanitized object, which is always a valid
// JSON object. object must be a valid JSON object, such as encoding/json's
// output or another module's checked output: only its braces are checked
// here, and a broken object can only fail this call. Errors are
// *PluginError.
func (m *Module) Sanitize(ctx context.Context, object, settings []byte, cc CallContext) ([]byte, error) {
	if !m.hasSanitize {
		return nil, newError(m.digest, ReasonMissingExport, "module does not export %q", exportSanitize)
	}
	out, err := m.call(ctx, exportSanitize, object, settings, cc, validateObject)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Layout runs the module's layout function on object and returns the
// repository path it chose, unvalidated beyond being non-empty UTF-8 without
// NUL bytes: the caller normalises it and rejects unsafe paths.
func (m *Module) Layout(ctx context.Context, object, settings []byte, cc CallContext) (string, error) {
	if !m.hasLayout {
		return "", newError(m.digest, ReasonMissingExport, "module does not export %q", exportLayout)
	}
	out, err := m.call(ctx, exportLayout, object, settings, cc, validatePath)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

func validateObject(out []byte) error {
	if !validJSON(out) {
		return errors.New("sanitize output is not valid JSON")
	}
	if i := skipWS(out, 0); i >= len(out) || out[i] != '{' {
		return errors.New("sanitize output is not a JSON object")
	}
	return nil
}

func validatePath(out []byte) error {
	switch {
	case len(out) == 0:
		return errors.New("layout returned an empty path")
	case len(out) > maxPathBytes:
		return fmt.Errorf("layout path is %d bytes, limit %d", len(out), maxPathBytes)
	case !utf8.Valid(out):
		return errors.New("layout path is not UTF-8")
	case bytes.IndexByte(out, 0) >= 0:
		return errors.New("layout path contains a NUL byte")
	}
	return nil
}

// call builds the input envelope, runs export on a pooled instance and
// validates the output.
func (m *Module) call(ctx context.Context, export string, object, settings []byte, cc CallContext, validate func([]byte) error) ([]byte, error) {
	m.host.running.RLock()
	defer m.host.running.RUnlock()
	m.host.inFlight.Add(1)
	defer m.host.inFlight.Add(-1) // runs before RUnlock: Close sees 0
	raw := object
	object, err := redactSecret(object, cc)
	if err != nil {
		return nil, err
	}
	input, err := envelope(object, settings, cc)
	if err != nil {
		return nil, err
	}
	inst, err := m.acquire(ctx)
	if err != nil {
		return nil, err
	}
	out, perr := inst.run(ctx, m, export, input)
	if perr == nil {
		if verr := validate(out); verr != nil {
			perr = &PluginError{Module: m.digest, Reason: ReasonBadOutput, Err: verr}
		}
	}
	// A plugin that reported an error returned normally: its instance is sound.
	m.put(inst, perr == nil || perr.Reason == ReasonPluginFailed)
	if perr != nil && perr.Reason == ReasonPluginFailed {
		// The guest's own text reaches the rule's condition: no object value in it.
		perr.Err = errors.New(reduceGuestMessage([]byte(perr.Err.Error()), raw, object))
	}
	if perr != nil {
		return nil, perr
	}
	return out, nil
}

// envelope builds {"object":...,"settings":...,"context":...} without
// re-encoding the object. The object is checked only for its braces: callers
// pass encoding/json output or a module's validated output, and the module
// reads it with its own parser anyway; a broken object can only make that
// one call fail.
func envelope(object, settings []byte, cc CallContext) ([]byte, error) {
	object = bytes.TrimSpace(object)
	if len(object) < 2 || object[0] != '{' || object[len(object)-1] != '}' {
		return nil, errors.New("plugin call: object is not a JSON object")
	}
	if len(bytes.TrimSpace(settings)) == 0 {
		settings = []byte("null")
	} else if !validJSON(settings) {
		return nil, errors.New("plugin call: settings are not valid JSON")
	}
	ctxJSON, err := json.Marshal(cc)
	if err != nil {
		return nil, fmt.Errorf("plugin call: encoding context: %w", err)
	}
	buf := make([]byte, 0, len(object)+len(settings)+len(ctxJSON)+40)
	buf = append(buf, `{"object":`...)
	buf = append(buf, object...)
	buf = append(buf, `,"settings":`...)
	buf = append(buf, settings...)
	buf = append(buf, `,"context":`...)
	buf = append(buf, ctxJSON...)
	return append(buf, '}'), nil
}

// acquire returns an idle instance or starts one, waiting for a free slot
// as long as ctx allows.
func (m *Module) acquire(ctx context.Context) (*instance, error) {
	if m.isClosed() {
		return nil, newError(m.digest, ReasonClosed, "module was released")
	}
	select {
	case inst := <-m.idle:
		return inst, nil
	default:
	}
	select {
	case inst := <-m.idle:
		return inst, nil
	case m.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, newError(m.digest, ReasonTimeout, "waiting for a free instance: %w", ctx.Err())
	}
	// A slot may free up because an instance went idle: prefer it.
	select {
	case inst := <-m.idle:
		<-m.slots
		return inst, nil
	default:
	}
	inst, err := m.instantiate(ctx)
	if err != nil {
		<-m.slots
		return nil, err
	}
	return inst, nil
}

// put returns inst to the pool when healthy, otherwise closes it and frees
// its slot. Idle instances keep their slot.
func (m *Module) put(inst *instance, healthy bool) {
	m.mu.Lock()
	if healthy && !m.closed && !inst.dead.Load() {
		select {
		case m.idle <- inst:
			m.mu.Unlock()
			return
		default:
		}
	}
	m.mu.Unlock()
	inst.close()
	<-m.slots
}

func (m *Module) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// shutdown closes idle instances; busy instances are closed when their call
// returns. The compiled module stays with the host.
func (m *Module) shutdown() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	for {
		select {
		case inst := <-m.idle:
			inst.close()
			<-m.slots
		default:
			return
		}
	}
}

// classify turns an error from instantiating or calling into a PluginError.
func (m *Module) classify(inst *instance, err error, timedOut bool) *PluginError {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded, sys.ExitCodeContextCanceled:
			return &PluginError{Module: m.digest, Reason: ReasonTimeout, Err: err}
		}
	}
	switch {
	case timedOut, errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &PluginError{Module: m.digest, Reason: ReasonTimeout, Err: err}
	case inst.outOfMemory():
		return &PluginError{Module: m.digest, Reason: ReasonOutOfMemory,
			Err: fmt.Errorf("memory limit of %d bytes reached: %w", inst.memLimit, err)}
	default:
		return &PluginError{Module: m.digest, Reason: ReasonTrap, Err: err}
	}
}

// instance is one instantiated module. It serves one call at a time.
type instance struct {
	mod                                api.Module
	mem                                api.Memory
	abi, alloc, free, sanitize, layout api.Function
	stderr                             *boundedBuffer
	memLimit                           uint64
	dead                               atomicBool
}

func (inst *instance) close() {
	inst.dead.Store(true)
	if inst.mod != nil {
		_ = inst.mod.Close(context.Background())
	}
}

// outOfMemory reports whether the instance failed for lack of memory: the Go
// runtime says so on stderr, other languages trap after memory.grow fails,
// which leaves memory within one Go heap arena (4 MiB) of the cap.
func (inst *instance) outOfMemory() bool {
	if bytes.Contains(inst.stderr.Bytes(), []byte("out of memory")) {
		return true
	}
	return inst.mem != nil && uint64(inst.mem.Size())+4<<20 >= inst.memLimit
}

func (inst *instance) abiVersion(ctx context.Context, opts Options) (uint32, error) {
	g := newGuard(ctx, opts.CallTimeout, opts.deadline)
	res, err := inst.abi.Call(g.ctx)
	g.stop()
	if g.expired {
		return 0, fmt.Errorf("calling %s: %w", exportABIVersion, g.stopped())
	}
	if err != nil {
		return 0, fmt.Errorf("calling %s: %w", exportABIVersion, err)
	}
	return uint32(res[0]), nil
}

// run copies input into the instance, calls export and copies the output
// out. Any failure marks the instance dead.
func (inst *instance) run(ctx context.Context, m *Module, export string, input []byte) ([]byte, *PluginError) {
	inst.stderr.Reset()
	opts := m.host.opts
	g := newGuard(ctx, opts.CallTimeout, opts.deadline)
	out, perr := inst.runGuarded(g, m, export, input)
	g.stop()
	if perr != nil && perr.Reason != ReasonPluginFailed {
		inst.dead.Store(true)
	}
	if g.expired {
		// Stopped, or (wazero's context mode) closed as the call returned.
		inst.dead.Store(true)
	}
	return out, perr
}

func (inst *instance) runGuarded(g *guard, m *Module, export string, input []byte) ([]byte, *PluginError) {
	fail := func(what string, err error) ([]byte, *PluginError) {
		if g.fired() {
			return nil, m.classify(inst, fmt.Errorf("%s: %w", what, g.stopped()), true)
		}
		return nil, m.classify(inst, fmt.Errorf("%s: %w", what, err), false)
	}
	bad := func(format string, args ...any) ([]byte, *PluginError) {
		return nil, newError(m.digest, ReasonBadOutput, format, args...)
	}
	fn := inst.sanitize
	if export == exportLayout {
		fn = inst.layout
	}
	res, err := inst.alloc.Call(g.ctx, uint64(len(input)))
	if err != nil {
		return fail("calling alloc", err)
	}
	ptr := uint32(res[0])
	if !inst.mem.Write(ptr, input) {
		return bad("alloc(%d) returned %d, outside memory of %d bytes", len(input), ptr, inst.mem.Size())
	}
	res, err = fn.Call(g.ctx, uint64(ptr), uint64(len(input)))
	if err != nil {
		return fail("calling "+export, err)
	}
	packed := res[0]
	if inst.free != nil {
		if _, err := inst.free.Call(g.ctx, uint64(ptr), uint64(len(input))); err != nil {
			return fail("calling free", err)
		}
	}
	outPtr, n := uint32(packed>>32), uint32(packed)
	if n&errorFlag != 0 {
		n &^= errorFlag
		msg, ok := inst.mem.Read(outPtr, min(n, maxErrorMessage))
		if !ok {
			return bad("%s error message at %d+%d is outside memory", export, outPtr, n)
		}
		return nil, newError(m.digest, ReasonPluginFailed, "%s", strings.ToValidUTF8(string(msg), "\uFFFD"))
	}
	if uint64(n) > uint64(m.host.opts.MaxOutputBytes) {
		return nil, newError(m.digest, ReasonOutputTooLarge, "%s output is %d bytes, limit %d", export, n, m.host.opts.MaxOutputBytes)
	}
	out, ok := inst.mem.Read(outPtr, n)
	if !ok {
		return bad("%s output at %d+%d is outside memory of %d bytes", export, outPtr, n, inst.mem.Size())
	}
	return bytes.Clone(out), nil
}

// boundedBuffer keeps the first limit bytes written to it (a module's
// stderr): enough to recognise a runtime's out-of-memory message, never
// unbounded. Its content is used for classification only, never logged,
// because a plugin may print object data.
type boundedBuffer struct {
	mu    sync.Mutex
	buf   []byte
	limit int
}

// Write implements io.Writer; it never fails.
func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.limit - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// Bytes returns a copy of what was kept.
func (b *boundedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf)
}

// Reset forgets what was kept.
func (b *boundedBuffer) Reset() {
	b.mu.Lock()
	b.buf = b.buf[:0]
	b.mu.Unlock()
}
