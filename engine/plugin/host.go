package plugin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Defaults for Options fields left zero.
const (
	// DefaultMemoryLimitPages caps an instance at 128 MiB (64 KiB pages); a
	// Go-built plugin needs about 16 MiB at rest.
	DefaultMemoryLimitPages = 2048
	// DefaultCallTimeout bounds one plugin call.
	DefaultCallTimeout = 2 * time.Second
	// DefaultInitTimeout bounds instantiating a module (its _initialize).
	DefaultInitTimeout = 10 * time.Second
	// DefaultPoolSize is the number of instances per module.
	DefaultPoolSize = 2
	// DefaultMaxOutputBytes caps one call's output at 8 MiB.
	DefaultMaxOutputBytes = 8 << 20
)

// Options configure a Host. Zero values take the defaults above.
type Options struct {
	// MemoryLimitPages caps each instance's linear memory, in 64 KiB pages.
	MemoryLimitPages uint32
	// CallTimeout bounds every call; a call past it is stopped and its
	// instance discarded.
	CallTimeout time.Duration
	// InitTimeout bounds instantiating a module, including _initialize.
	InitTimeout time.Duration
	// PoolSize is how many instances of one module may exist at once; calls
	// beyond it wait for a free instance.
	PoolSize int
	// MaxOutputBytes rejects larger outputs before they are copied.
	MaxOutputBytes int
	// CacheDir keeps compiled modules on disk across restarts; empty keeps
	// them in memory only.
	CacheDir string
	// GrantClock gives modules the real wall and monotonic clocks and a real
	// sleep; without it they see a fake clock that advances 1ms per reading.
	GrantClock bool
	// GrantRandom gives modules crypto/rand; without it their random source
	// is deterministic.
	GrantRandom bool

	// deadline selects how calls are bounded (see deadline.go); benchmarks
	// compare the modes, production always uses the default.
	deadline deadlineMode
}

func (o Options) withDefaults() Options {
	if o.MemoryLimitPages == 0 {
		o.MemoryLimitPages = DefaultMemoryLimitPages
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.InitTimeout <= 0 {
		o.InitTimeout = DefaultInitTimeout
	}
	if o.PoolSize <= 0 {
		o.PoolSize = DefaultPoolSize
	}
	if o.MaxOutputBytes <= 0 {
		o.MaxOutputBytes = DefaultMaxOutputBytes
	}
	return o
}

// Host compiles, caches and runs plugin modules. It is safe for concurrent
// use.
type Host struct {
	opts    Options
	runtime wazero.Runtime
	cache   wazero.CompilationCache

	mu      sync.Mutex
	modules map[string]*loadEntry // by sha256 digest
	// released keeps the compiled form of the last released modules, oldest
	// first, so a rule that drops and re-adds a module (or a rule update that
	// flips between two digests) does not pay for compilation again.
	released []releasedModule
	closed   bool

	// running is held for reading by every Load and call that may run
	// guest code, and for writing by Close: wazero's runtime must not be
	// closed under a running guest (a call racing the manager's shutdown).
	// Calls are bounded by their deadlines, so Close waits at most that.
	running sync.RWMutex
	// inFlight counts the calls holding running; it is zero whenever
	// Close holds running (what the tests check Close against).
	inFlight atomic.Int64
}

// maxReleased bounds how many released compiled modules are kept.
const maxReleased = 8

type releasedModule struct {
	digest   string
	compiled wazero.CompiledModule
}

// loadEntry lets concurrent Loads of one digest share a single compile.
type loadEntry struct {
	ready chan struct{}
	mod   *Module
	err   error
}

// NewHost returns a Host with its own wazero runtime. Close releases it.
func NewHost(ctx context.Context, opts Options) (*Host, error) {
	opts = opts.withDefaults()
	if opts.MemoryLimitPages > 65536 {
		return nil, fmt.Errorf("plugin host: MemoryLimitPages %d exceeds 65536 (4 GiB)", opts.MemoryLimitPages)
	}
	var (
		cache wazero.CompilationCache
		err   error
	)
	if opts.CacheDir != "" {
		cache, err = wazero.NewCompilationCacheWithDir(opts.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("plugin host: compilation cache in %s: %w", opts.CacheDir, err)
		}
	} else {
		cache = wazero.NewCompilationCache()
	}
	cfg := wazero.NewRuntimeConfig(). // the optimizing compiler where supported
						WithCompilationCache(cache).
						WithMemoryLimitPages(opts.MemoryLimitPages).
						WithCloseOnContextDone(opts.deadline.closeOnContextDone())
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		_ = cache.Close(ctx)
		return nil, fmt.Errorf("plugin host: instantiating WASI: %w", err)
	}
	_, err = rt.NewHostModuleBuilder(interruptModule).
		NewFunctionBuilder().
		WithGoFunction(api.GoFunc(interruptCheckFunc), nil, []api.ValueType{api.ValueTypeI32}).
		Export(interruptCheck).
		Instantiate(ctx)
	if err != nil {
		_ = rt.Close(ctx)
		_ = cache.Close(ctx)
		return nil, fmt.Errorf("plugin host: instantiating %s: %w", interruptModule, err)
	}
	return &Host{opts: opts, runtime: rt, cache: cache, modules: map[string]*loadEntry{}}, nil
}

// Close stops every module and releases the runtime. It waits for the
// calls in flight (each bounded by its deadline); later calls fail.
func (h *Host) Close(ctx context.Context) error {
	h.running.Lock()
	defer h.running.Unlock()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	var mods []*Module
	for _, e := range h.modules {
		if e.mod != nil {
			mods = append(mods, e.mod)
		}
	}
	h.modules = map[string]*loadEntry{}
	released := h.released
	h.released = nil
	h.mu.Unlock()
	for _, m := range mods {
		m.shutdown()
		_ = m.compiled.Close(ctx)
	}
	for _, r := range released {
		_ = r.compiled.Close(ctx)
	}
	return errors.Join(h.runtime.Close(ctx), h.cache.Close(ctx))
}

// Load verifies that wasm hashes to expectedSHA256 (hex, optionally prefixed
// "sha256:"), compiles it once per digest, checks its exports and ABI
// version, and returns the shared Module with one warm instance. Every
// successful Load must be paired with Module.Release.
func (h *Host) Load(ctx context.Context, wasm []byte, expectedSHA256 string) (*Module, error) {
	h.running.RLock()
	defer h.running.RUnlock()
	want := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(expectedSHA256), "sha256:"))
	sum := sha256.Sum256(wasm)
	digest := hex.EncodeToString(sum[:])
	if digest != want {
		// The bytes' own digest is not shown: they may come from a Secret
		// (see digestMismatch in source.go).
		return nil, newError(want, ReasonDigestMismatch,
			"module does not match the pinned digest sha256:%s", want)
	}
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return nil, newError(digest, ReasonClosed, "host is closed")
		}
		e, ok := h.modules[digest]
		if !ok {
			e = &loadEntry{ready: make(chan struct{})}
			h.modules[digest] = e
			h.mu.Unlock()
			e.mod, e.err = h.compile(ctx, digest, wasm)
			h.mu.Lock()
			if e.err != nil {
				delete(h.modules, digest)
			} else {
				e.mod.refs = 1
			}
			h.mu.Unlock()
			close(e.ready)
			return e.mod, e.err
		}
		h.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, newError(digest, ReasonTimeout, "waiting for the module to compile: %w", ctx.Err())
		}
		if e.err != nil {
			return nil, e.err
		}
		h.mu.Lock()
		if h.modules[digest] == e && e.mod.refs > 0 {
			e.mod.refs++
			h.mu.Unlock()
			return e.mod, nil
		}
		h.mu.Unlock() // released meanwhile: load again
	}
}

// release drops one reference to m and shuts it down at zero.
func (h *Host) release(ctx context.Context, m *Module) {
	h.mu.Lock()
	if m.refs <= 0 {
		h.mu.Unlock()
		return
	}
	m.refs--
	last := m.refs == 0
	if last {
		if e, ok := h.modules[m.digest]; ok && e.mod == m {
			delete(h.modules, m.digest)
		}
	}
	var evicted []releasedModule
	if last {
		h.released = append(h.released, releasedModule{digest: m.digest, compiled: m.compiled})
		if n := len(h.released) - maxReleased; n > 0 {
			evicted = append(evicted, h.released[:n]...)
			h.released = append([]releasedModule(nil), h.released[n:]...)
		}
	}
	h.mu.Unlock()
	if last {
		m.shutdown()
	}
	for _, r := range evicted {
		_ = r.compiled.Close(ctx)
	}
}

// takeReleased returns and forgets the kept compiled module for digest.
func (h *Host) takeReleased(digest string) wazero.CompiledModule {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, r := range h.released {
		if r.digest == digest {
			h.released = append(h.released[:i:i], h.released[i+1:]...)
			return r.compiled
		}
	}
	return nil
}

func (h *Host) compile(ctx context.Context, digest string, wasm []byte) (*Module, error) {
	compiled := h.takeReleased(digest)
	if compiled == nil {
		var err error
		if h.opts.deadline == deadlineInterrupt {
			if wasm, err = instrument(wasm); err != nil {
				return nil, newError(digest, ReasonInvalidModule, "decoding: %w", err)
			}
		}
		if compiled, err = h.runtime.CompileModule(ctx, wasm); err != nil {
			return nil, newError(digest, ReasonInvalidModule, "compiling: %w", err)
		}
	}
	m := &Module{
		host:     h,
		digest:   digest,
		compiled: compiled,
		slots:    make(chan struct{}, h.opts.PoolSize),
		idle:     make(chan *instance, h.opts.PoolSize),
	}
	fail := func(err error) (*Module, error) {
		_ = compiled.Close(ctx)
		return nil, err
	}
	if err := checkImports(digest, compiled); err != nil {
		return fail(err)
	}
	if err := m.checkExports(); err != nil {
		return fail(err)
	}
	m.slots <- struct{}{}
	inst, err := m.instantiate(ctx)
	if err != nil {
		<-m.slots
		return fail(err)
	}
	version, err := inst.abiVersion(ctx, h.opts)
	if err != nil {
		err = m.classify(inst, err, false)
	} else if version != abiVersion {
		err = newError(digest, ReasonABIVersion, "reverser_abi_version returned %d, this host supports %d", version, abiVersion)
	}
	if err != nil {
		inst.close()
		<-m.slots
		return fail(err)
	}
	m.put(inst, true)
	return m, nil
}

// checkImports allows WASI preview 1 functions only (and the interrupt
// check that instrument adds): the host provides nothing else, and refusing
// here is clearer than failing to instantiate.
func checkImports(digest string, compiled wazero.CompiledModule) error {
	for _, f := range compiled.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod == interruptModule && name == interruptCheck {
			continue // added by instrument
		}
		if mod != wasi_snapshot_preview1.ModuleName {
			return newError(digest, ReasonInvalidModule, "imports %s.%s; only %s is provided", mod, name, wasi_snapshot_preview1.ModuleName)
		}
	}
	for _, mem := range compiled.ImportedMemories() {
		mod, name, _ := mem.Import()
		return newError(digest, ReasonInvalidModule, "imports memory %s.%s; the module must define and export its own", mod, name)
	}
	return nil
}

// instantiate starts one instance; the caller holds a pool slot for it.
func (m *Module) instantiate(ctx context.Context) (*instance, error) {
	opts := m.host.opts
	inst := &instance{stderr: &boundedBuffer{limit: 4096}, memLimit: uint64(opts.MemoryLimitPages) * 65536}
	cfg := wazero.NewModuleConfig().
		WithName("").         // anonymous, so one module can have many instances
		WithStartFunctions(). // _initialize runs below, under a guard
		WithStderr(inst.stderr)
	if opts.GrantClock {
		// A sleeping guest is in the host, where no loop check runs: each
		// sleep is capped at the call timeout, so a sleep cannot outlast a
		// call by more than that.
		limit := opts.CallTimeout.Nanoseconds()
		cfg = cfg.WithSysWalltime().WithSysNanotime().WithNanosleep(func(ns int64) {
			time.Sleep(time.Duration(min(ns, limit)))
		})
	}
	if opts.GrantRandom {
		cfg = cfg.WithRandSource(rand.Reader)
	}
	// One guard bounds the module's start function (run by
	// InstantiateModule) and _initialize together.
	g := newGuard(ctx, opts.InitTimeout, opts.deadline)
	mod, err := m.host.runtime.InstantiateModule(g.ctx, m.compiled, cfg)
	if err != nil {
		g.stop()
		if mod != nil {
			_ = mod.Close(context.Background())
		}
		if g.expired {
			err = g.stopped()
		}
		return nil, m.classify(inst, fmt.Errorf("instantiating: %w", err), g.expired)
	}
	inst.mod = mod
	if init := mod.ExportedFunction("_initialize"); init != nil {
		_, err = init.Call(g.ctx)
	}
	g.stop()
	if g.expired {
		err = g.stopped()
	}
	if err != nil {
		perr := m.classify(inst, fmt.Errorf("instantiating: _initialize: %w", err), g.expired)
		inst.close()
		return nil, perr
	}
	inst.mem = mod.Memory()
	inst.abi = mod.ExportedFunction(exportABIVersion)
	inst.alloc = mod.ExportedFunction(exportAlloc)
	inst.free = mod.ExportedFunction(exportFree)
	inst.sanitize = mod.ExportedFunction(exportSanitize)
	inst.layout = mod.ExportedFunction(exportLayout)
	if inst.mem == nil || inst.abi == nil || inst.alloc == nil {
		inst.close()
		return nil, newError(m.digest, ReasonMissingExport, "instance lacks memory, %s or %s", exportABIVersion, exportAlloc)
	}
	return inst, nil
}

// checkExports verifies names and signatures of the ABI v1 exports.
func (m *Module) checkExports() error {
	if _, ok := m.compiled.ExportedMemories()[exportMemory]; !ok {
		return newError(m.digest, ReasonMissingExport, "module does not export %q", exportMemory)
	}
	fns := m.compiled.ExportedFunctions()
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	required := []struct {
		name            string
		params, results []api.ValueType
	}{
		{exportABIVersion, nil, []api.ValueType{i32}},
		{exportAlloc, []api.ValueType{i32}, []api.ValueType{i32}},
	}
	for _, r := range required {
		if err := checkSignature(m.digest, fns, r.name, r.params, r.results, true); err != nil {
			return err
		}
	}
	if err := checkSignature(m.digest, fns, exportFree, []api.ValueType{i32, i32}, nil, false); err != nil {
		return err
	}
	call := []api.ValueType{i32, i32}
	if err := checkSignature(m.digest, fns, exportSanitize, call, []api.ValueType{i64}, false); err != nil {
		return err
	}
	if err := checkSignature(m.digest, fns, exportLayout, call, []api.ValueType{i64}, false); err != nil {
		return err
	}
	_, m.hasSanitize = fns[exportSanitize]
	_, m.hasLayout = fns[exportLayout]
	if !m.hasSanitize && !m.hasLayout {
		return newError(m.digest, ReasonMissingExport, "module exports neither %q nor %q", exportSanitize, exportLayout)
	}
	return nil
}

func checkSignature(digest string, fns map[string]api.FunctionDefinition, name string, params, results []api.ValueType, required bool) error {
	def, ok := fns[name]
	if !ok {
		if required {
			return newError(digest, ReasonMissingExport, "module does not export function %q", name)
		}
		return nil
	}
	if !sameTypes(def.ParamTypes(), params) || !sameTypes(def.ResultTypes(), results) {
		return newError(digest, ReasonMissingExport, "export %q has signature (%s) -> (%s), want (%s) -> (%s)", name,
			typeNames(def.ParamTypes()), typeNames(def.ResultTypes()), typeNames(params), typeNames(results))
	}
	return nil
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func typeNames(ts []api.ValueType) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = api.ValueTypeName(t)
	}
	return strings.Join(names, ", ")
}
