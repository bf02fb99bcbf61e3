#!/usr/bin/env bash
# Builds the pinned OPA CLI (for `opa test policies/`) from the Go module
# proxy into BIN_PATH, and skips the build when BIN_PATH already exists.
# Usage: build.sh BIN_PATH   e.g. build.sh bin/opa-v1.22.3
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
BIN_PATH="${1:?usage: build.sh BIN_PATH}"
mkdir -p "$(dirname "$BIN_PATH")"
BIN_PATH="$(cd "$(dirname "$BIN_PATH")" && pwd)/$(basename "$BIN_PATH")"

if [[ -x "$BIN_PATH" ]]; then
	echo "opa: $BIN_PATH is cached"
	exit 0
fi
echo "opa: building $(basename "$BIN_PATH") (a minute or two on a cold cache)"
(cd "$HERE" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN_PATH" github.com/open-policy-agent/opa)
