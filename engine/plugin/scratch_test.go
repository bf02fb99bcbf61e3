package plugin

import (
	"context"
	"testing"
)

func BenchmarkScratchABI(b *testing.B) {
	for _, mode := range []deadlineMode{deadlineInterrupt, deadlineNone} {
		h := newTestHost(b, Options{deadline: mode})
		m := load(b, h, goPlugin(b, pkgStrip))
		inst, err := m.acquire(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		b.Run("abi", func(b *testing.B) {
			for b.Loop() {
				if _, err := inst.abi.Call(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("alloc", func(b *testing.B) {
			for b.Loop() {
				if _, err := inst.alloc.Call(context.Background(), 5000); err != nil {
					b.Fatal(err)
				}
			}
		})
		obj := deployment(b)
		b.Run("envelope+valid", func(b *testing.B) {
			for b.Loop() {
				in, _ := envelope(obj, stripSettings, testCallContext)
				_ = validateObject(obj)
				_ = in
			}
		})
		in, _ := envelope(obj, stripSettings, testCallContext)
		b.Run("run", func(b *testing.B) {
			for b.Loop() {
				if _, err := inst.run(context.Background(), m, "sanitize", in); err != nil {
					b.Fatal(err)
				}
			}
		})
		// settings null: only the envelope walk
		in2, _ := envelope(obj, nil, testCallContext)
		b.Run("run-nosettings", func(b *testing.B) {
			for b.Loop() {
				if _, err := inst.run(context.Background(), m, "sanitize", in2); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkScratchValid(b *testing.B) {
	obj := deployment(b)
	b.SetBytes(int64(len(obj)))
	for b.Loop() {
		_ = validateObject(obj)
	}
}

func BenchmarkScratchProbe(b *testing.B) {
	h := newTestHost(b, Options{deadline: deadlineNone})
	m := load(b, h, goPlugin(b, pkgStrip))
	inst, err := m.acquire(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	obj := deployment(b)
	in, _ := envelope(obj, stripSettings, testCallContext)
	res, _ := inst.alloc.Call(context.Background(), uint64(len(in)))
	ptr := uint32(res[0])
	inst.mem.Write(ptr, in)
	for _, name := range []string{"probe_noop", "probe_index", "probe_scan", "probe_parse", "probe_members", "sanitize"} {
		fn := inst.mod.ExportedFunction(name)
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if r, err := fn.Call(context.Background(), uint64(ptr), uint64(len(in))); err != nil {
					b.Fatal(err, r)
				}
			}
		})
	}
}
