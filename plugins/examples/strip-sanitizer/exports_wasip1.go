//go:build wasip1

package main

import "github.com/gitops-reverser/gitops-reverser/plugins/sdk"

//go:wasmexport sanitize
func sanitize(ptr, size uint32) uint64 { return sdk.HandleSanitize(ptr, size, strip) }
