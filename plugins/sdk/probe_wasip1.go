//go:build wasip1

package sdk

//go:wasmexport probe_noop
func probeNoop(ptr, size uint32) uint64 { return 0 }

//go:wasmexport probe_index
func probeIndex(ptr, size uint32) uint64 {
	_ = indexDocument(guestBytes(ptr, size))
	n := len(current.nodes)
	dropIndex()
	return uint64(n)
}

//go:wasmexport probe_scan
func probeScan(ptr, size uint32) uint64 {
	in := guestBytes(ptr, size)
	e, _ := valueEnd(in, 0)
	return uint64(e)
}

//go:wasmexport probe_parse
func probeParse(ptr, size uint32) uint64 {
	in, _ := parseIndexed(guestBytes(ptr, size))
	dropIndex()
	return uint64(len(in.Object))
}

//go:wasmexport probe_members
func probeMembers(ptr, size uint32) uint64 {
	in, _ := parseIndexed(guestBytes(ptr, size))
	n := 0
	var walk func(s Span)
	walk = func(s Span) {
		switch s.Kind(in.Object) {
		case '{':
			_ = Members(in.Object, s, func(k []byte, v Span) bool { n++; walk(v); return true })
		case '[':
			_ = Elements(in.Object, s, func(i int, v Span) bool { n++; walk(v); return true })
		}
	}
	walk(Whole(in.Object))
	dropIndex()
	return uint64(n)
}
