//go:build wasip1

package main

import "github.com/gitops-reverser/gitops-reverser/plugins/sdk"

//go:wasmexport layout
func layout(ptr, size uint32) uint64 { return sdk.HandleLayout(ptr, size, teamPath) }
