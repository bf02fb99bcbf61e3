#!/usr/bin/env bash
# Builds every example plugin into OUTDIR as <name>.wasm, skipping a plugin
# whose .wasm is newer than its sources and the SDK's.
# Usage: plugins/build.sh OUTDIR
set -euo pipefail

if [[ $# -ne 1 ]]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"

cd "$root"
for dir in plugins/examples/*/; do
	name="$(basename "$dir")"
	wasm="$out/$name.wasm"
	if [[ -f "$wasm" ]] && [[ -z "$(find "$dir" plugins/sdk go.mod go.sum -name '*.go' -newer "$wasm" -o -name 'go.*' -newer "$wasm" | head -n1)" ]]; then
		echo "plugins: $name is up to date"
		continue
	fi
	echo "plugins: building $name"
	GOOS=wasip1 GOARCH=wasm go build -trimpath -buildmode=c-shared -o "$wasm.tmp" "./$dir"
	mv "$wasm.tmp" "$wasm"
	sha256sum "$wasm" | awk -v n="$name" '{print "plugins: " n " sha256 " $1}'
done
