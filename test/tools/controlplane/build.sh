#!/usr/bin/env bash
# Builds the control-plane binaries that envtest and `make run` use (etcd,
# kube-apiserver, kubectl) from the Go module proxy into $BIN_DIR, and skips
# each binary whose recorded version already matches.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
BIN_DIR="${1:?usage: build.sh BIN_DIR}"
K8S_VERSION="v1.37.2"
ETCD_VERSION="v3.6.16"
mkdir -p "$BIN_DIR"
BIN_DIR="$(cd "$BIN_DIR" && pwd)"

# up_to_date NAME VERSION: true when BIN_DIR/NAME was built at VERSION.
up_to_date() {
	[[ -x "$BIN_DIR/$1" && -f "$BIN_DIR/.$1.version" && "$(cat "$BIN_DIR/.$1.version")" == "$2" ]]
}

k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${K8S_VERSION} -X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=37"

for cmd in kube-apiserver kubectl; do
	if up_to_date "$cmd" "$K8S_VERSION"; then
		echo "controlplane: $cmd $K8S_VERSION is cached in $BIN_DIR"
		continue
	fi
	echo "controlplane: building $cmd $K8S_VERSION (a few minutes on a cold cache)"
	(cd "$HERE/kubernetes" && CGO_ENABLED=0 go build -trimpath -ldflags "$k8s_ldflags" -o "$BIN_DIR/$cmd" "k8s.io/kubernetes/cmd/$cmd")
	echo "$K8S_VERSION" >"$BIN_DIR/.$cmd.version"
done

if up_to_date etcd "$ETCD_VERSION"; then
	echo "controlplane: etcd $ETCD_VERSION is cached in $BIN_DIR"
else
	echo "controlplane: building etcd $ETCD_VERSION"
	(cd "$HERE/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd" go.etcd.io/etcd/server/v3)
	echo "$ETCD_VERSION" >"$BIN_DIR/.etcd.version"
fi
