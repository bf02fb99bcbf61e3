//go:build tools

// Package tools records the OPA CLI that this module builds so that go.sum
// keeps its dependencies.
package tools

import _ "github.com/open-policy-agent/opa"
