//go:build wasip1

// Command hostile is a test plugin that misbehaves on request, to prove the
// host contains it. Settings: {"mode": "..."}; see the switch below.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hostile.wasm .
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"

	"github.com/gitops-reverser/gitops-reverser/plugins/sdk"
)

type settings struct {
	Mode string `json:"mode"`
}

// hoard keeps allocations reachable so the garbage collector cannot free them.
var hoard [][]byte

var spin uint64

func mode(raw []byte) string {
	var s settings
	if len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		_ = json.Unmarshal(raw, &s)
	}
	return s.Mode
}

func misbehave(object, raw []byte) ([]byte, error) {
	switch mode(raw) {
	case "loop": // never returns
		for {
			spin++
		}
	case "oom": // grows memory until the cap stops it
		for {
			b := make([]byte, 8<<20)
			b[len(b)-1] = 1
			hoard = append(hoard, b)
		}
	case "panic": // recovered by the SDK, reported as a plugin error
		panic("hostile panic")
	case "crash": // unrecoverable runtime error: the Go runtime exits
		var mu sync.Mutex
		mu.Unlock()
	case "error":
		return nil, errors.New("refusing this object")
	case "echo-error": // reports the object it got as its error text
		return nil, errors.New(string(object))
	case "notjson":
		return []byte("this is not JSON"), nil
	case "array":
		return []byte("[1,2,3]"), nil
	case "roundtrip": // a naive generic decode and encode, for benchmarks
		var v map[string]any
		if err := json.Unmarshal(object, &v); err != nil {
			return nil, err
		}
		return json.Marshal(v)
	case "huge": // 100 MiB of output
		return bytes.Repeat([]byte{' '}, 100<<20), nil
	}
	return object, nil
}

func hostileSanitize(object, raw []byte) ([]byte, error) { return misbehave(object, raw) }

func hostileLayout(object, raw []byte) (string, error) {
	switch mode(raw) {
	case "escape-path":
		return "../../etc/passwd", nil
	case "git-path":
		return ".git/config", nil
	case "echo-path": // a refused path made of the object it got
		return "../" + string(object), nil
	case "empty":
		return "", nil
	}
	if _, err := misbehave(object, raw); err != nil {
		return "", err
	}
	return "hostile/ok.yaml", nil
}

//go:wasmexport sanitize
func sanitize(ptr, size uint32) uint64 { return sdk.HandleSanitize(ptr, size, hostileSanitize) }

//go:wasmexport layout
func layout(ptr, size uint32) uint64 { return sdk.HandleLayout(ptr, size, hostileLayout) }

func main() {}
