# gitops-reverser — see README.md. The two commands a newcomer needs:
#   make run    run the operator (current kubeconfig, or a local control plane)
#   make test   run every test, building the control-plane binaries if absent

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN ?= $(CURDIR)/bin
K8S_BIN ?= $(BIN)/k8s
CONTROLLER_GEN_VERSION ?= v0.23.0
CONTROLLER_GEN ?= $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
OPA_VERSION ?= v1.22.3
OPA ?= $(BIN)/opa-$(OPA_VERSION)
SOPS_VERSION ?= v3.13.3
export SOPS_BIN ?= $(BIN)/sops-$(SOPS_VERSION)
HELM_VERSION ?= v3.22.0
HELM ?= $(BIN)/helm-$(HELM_VERSION)
# test/packaging lints, renders and dry-runs the chart with this helm.
export HELM
IMG ?= ghcr.io/gitops-reverser/gitops-reverser:dev
GO_TEST_FLAGS ?= -race -count=1 -timeout 25m
# The version and commit `reverser version` prints.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
REVERSER_LDFLAGS ?= -X main.version=$(VERSION) -X main.commit=$(COMMIT)
export KUBEBUILDER_ASSETS ?= $(K8S_BIN)

.PHONY: all
all: build

##@ Help
.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development
.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC into config/.
	$(CONTROLLER_GEN) rbac:roleName=gitops-reverser crd paths="./api/..." paths="./engine/controller/..." paths="./engine/operator/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	cp config/crd/bases/*.yaml charts/gitops-reverser/crds/
	cp config/rbac/role.yaml charts/gitops-reverser/files/role.yaml

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: docs
docs: ## Generate the CRD reference docs/reference/crds.md from config/crd/bases.
	go run ./test/tools/crdref -o docs/reference/crds.md config/crd/bases

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -l -w $$(git ls-files '*.go' ; git ls-files --others --exclude-standard '*.go')

.PHONY: vet
vet: ## go vet every package.
	go vet ./...

.PHONY: verify
verify: generate manifests docs fmt vet ## Fail when generated files (CRDs, deepcopy, the CRD reference) are stale, go.mod is untidy or the tree is dirty.
	go mod tidy
	@if [ -n "$$(git status --porcelain)" ]; then \
		echo "verify: the tree is dirty after 'make generate manifests docs fmt':"; git status --porcelain; git --no-pager diff --stat; exit 1; fi
	@echo "verify: generated files are current and the tree is clean"

##@ Test
.PHONY: controlplane
controlplane: ## Build pinned etcd, kube-apiserver and kubectl into bin/k8s (cached).
	bash test/tools/controlplane/build.sh $(K8S_BIN)

.PHONY: opa
opa: ## Build the pinned OPA CLI into bin/ (cached).
	bash test/tools/opa/build.sh $(OPA)

.PHONY: sops
sops: ## Build the pinned sops CLI into bin/ (cached); test/e2e/secrets decrypts with it.
	bash test/tools/sops/build.sh $(SOPS_BIN) $(SOPS_VERSION)

.PHONY: policy-test
policy-test: opa ## Format-check, strict-check and test the default Rego policies with the real OPA CLI.
	$(OPA) fmt --fail --list policies/
	$(OPA) check --strict policies/
	$(OPA) test policies/ -v

.PHONY: test
test: controlplane vet policy-test sops $(HELM) ## Run every test: unit, envtest suites, e2e, opa test.
	go test $(GO_TEST_FLAGS) ./...

.PHONY: bench
bench: ## Run the benchmarks (figures go to docs/benchmarks.md).
	go test -run '^$$' -bench . -benchmem ./engine/...

BENCH_E2E_ARGS ?=
.PHONY: bench-e2e
bench-e2e: controlplane ## Whole-process benchmark: W450 three times (BENCH_E2E_ARGS="-objects=20000" for the start-up variant); see docs/benchmarks.md.
	go test -tags benche2e -count=1 -timeout 60m -v -run TestBenchE2E ./test/bench/ -args $(BENCH_E2E_ARGS)

.PHONY: helm
helm: $(HELM) ## Build the pinned helm into bin/ (cached).

.PHONY: chart-lint
chart-lint: $(HELM) ## Lint and render the Helm chart with a pinned helm (built from the module proxy).
	$(HELM) lint charts/gitops-reverser
	$(HELM) template gitops-reverser charts/gitops-reverser -n gitops-reverser-system >/dev/null
	$(HELM) lint charts/gitops-reverser -f charts/gitops-reverser/ci/all-options-values.yaml
	$(HELM) template gitops-reverser charts/gitops-reverser -n gitops-reverser-system -f charts/gitops-reverser/ci/all-options-values.yaml >/dev/null

##@ Build
.PHONY: plugins
plugins: ## Build the example WASM plugins into bin/plugins (skips up-to-date ones).
	bash plugins/build.sh $(BIN)/plugins

.PHONY: build
build: reverser ## Build the manager binary and the reverser CLI.
	go build -o $(BIN)/gitops-reverser ./cmd/gitops-reverser

.PHONY: reverser
reverser: ## Build the reverser CLI into bin/reverser, with its version and commit.
	go build -ldflags "$(REVERSER_LDFLAGS)" -o $(BIN)/reverser ./cmd/reverser

.PHONY: run
run: controlplane ## Run against the current kubeconfig, or a local control plane and Git repo (RUN_ARGS=-local forces the latter).
	go run ./cmd/gitops-reverser-dev $(RUN_ARGS)

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build -t $(IMG) .

##@ Deployment
# install/deploy use the pinned kubectl of bin/k8s (built by `make
# kubectl` when absent) and the current kubeconfig ($$KUBECONFIG).
KUBECTL ?= $(K8S_BIN)/kubectl
# The manager image as written in config/manager; deploy replaces it by IMG.
MANAGER_IMAGE_BASE := ghcr.io/gitops-reverser/gitops-reverser

.PHONY: kubectl
kubectl: ## Build the pinned kubectl (with the control plane) into bin/k8s (cached); progress goes to stderr.
	@bash test/tools/controlplane/build.sh $(K8S_BIN) >&2

.PHONY: install
install: manifests kubectl ## Install the CRDs into the current cluster.
	$(KUBECTL) apply --server-side -f config/crd/bases

.PHONY: uninstall
uninstall: kubectl ## Remove the CRDs (and with them every GitTarget and rule) from the current cluster.
	$(KUBECTL) delete --ignore-not-found -f config/crd/bases

# kustomize build config/default with the manager image set to IMG; the
# tree is not changed.
DEPLOY_MANIFESTS = $(KUBECTL) kustomize config/default | sed 's|image: $(MANAGER_IMAGE_BASE):.*|image: $(IMG)|'

.PHONY: deploy-manifests
deploy-manifests: kubectl ## Print what deploy applies (config/default with the manager image IMG).
	@$(DEPLOY_MANIFESTS)

.PHONY: deploy
deploy: manifests kubectl ## Deploy the operator with image IMG into the current cluster.
	$(DEPLOY_MANIFESTS) | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: kubectl ## Remove what deploy applied from the current cluster.
	$(DEPLOY_MANIFESTS) | $(KUBECTL) delete --ignore-not-found -f -

$(HELM):
	mkdir -p $(BIN)
	GOBIN=$(BIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(BIN)/helm $(HELM)

$(CONTROLLER_GEN):
	mkdir -p $(BIN)
	GOBIN=$(BIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/controller-gen $(CONTROLLER_GEN)
