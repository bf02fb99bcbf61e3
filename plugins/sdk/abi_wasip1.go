//go:build wasip1

package sdk

import "unsafe"

// inBuf is the buffer alloc hands to the host for the next call's input; it
// is reused across calls so steady-state calls allocate nothing for input.
var inBuf []byte

// outBuf keeps the last result alive until the host has copied it: the host
// reads it before it calls into the module again.
var outBuf []byte

//go:wasmexport reverser_abi_version
func reverserABIVersion() int32 { return ABIVersion }

//go:wasmexport alloc
func alloc(size uint32) uint32 {
	if size == 0 {
		size = 1
	}
	if uint32(cap(inBuf)) < size {
		inBuf = make([]byte, size)
	}
	inBuf = inBuf[:size]
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(inBuf))))
}

// HandleSanitize serves one call of the module's sanitize export: call it
// from a //go:wasmexport sanitize function with that function's arguments.
//
//	//go:wasmexport sanitize
//	func sanitize(ptr, size uint32) uint64 { return sdk.HandleSanitize(ptr, size, mySanitizer) }
func HandleSanitize(ptr, size uint32, fn SanitizeFunc) uint64 {
	out, err := RunSanitize(guestBytes(ptr, size), fn)
	if err != nil {
		return result(errorMessage(err), true)
	}
	return result(out, false)
}

// HandleLayout serves one call of the module's layout export: call it from a
// //go:wasmexport layout function with that function's arguments.
func HandleLayout(ptr, size uint32, fn LayoutFunc) uint64 {
	path, err := RunLayout(guestBytes(ptr, size), fn)
	if err != nil {
		return result(errorMessage(err), true)
	}
	return result([]byte(path), false)
}

func guestBytes(ptr, size uint32) []byte {
	if size == 0 {
		return nil
	}
	// Guest pointers are offsets into linear memory, which starts at 0.
	return unsafe.Slice((*byte)(unsafe.Add(nil, uintptr(ptr))), size)
}

// result packs out as ptr<<32 | len, with ErrorFlag in len for errors.
func result(out []byte, isErr bool) uint64 {
	outBuf = out
	n := uint64(len(out))
	if n >= ErrorFlag {
		outBuf = []byte("output larger than 2 GiB")
		n, isErr = uint64(len(outBuf)), true
	}
	if isErr {
		n |= ErrorFlag
	}
	if len(outBuf) == 0 {
		return n
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(outBuf))))<<32 | n
}
