//go:build tools

// Package tools records the commands this module builds so that go.sum keeps
// their dependencies.
package tools
