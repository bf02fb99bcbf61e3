#!/usr/bin/env bash
# Builds the pinned sops CLI (for the e2e suite test/e2e/secrets, which
# decrypts the operator's files with the real `sops -d`) from the Go module
# proxy into BIN_PATH, and skips the build when BIN_PATH already exists.
# `go install pkg@version` builds in module mode outside the operator's
# go.mod, so sops's cloud SDKs never enter the operator's build.
# Usage: build.sh BIN_PATH VERSION   e.g. build.sh bin/sops-v3.13.3 v3.13.3
set -euo pipefail

BIN_PATH="${1:?usage: build.sh BIN_PATH VERSION}"
VERSION="${2:?usage: build.sh BIN_PATH VERSION}"
mkdir -p "$(dirname "$BIN_PATH")"
BIN_PATH="$(cd "$(dirname "$BIN_PATH")" && pwd)/$(basename "$BIN_PATH")"

if [[ -x "$BIN_PATH" ]]; then
	echo "sops: $BIN_PATH is cached"
	exit 0
fi
echo "sops: building $(basename "$BIN_PATH") (a few minutes on a cold cache)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && CGO_ENABLED=0 GOFLAGS=-mod=mod GOBIN="$TMP" go install -trimpath -ldflags "-s -w" "github.com/getsops/sops/v3/cmd/sops@${VERSION}")
mv "$TMP/sops" "$BIN_PATH"
