# Builds the gitops-reverser manager image: a static binary on distroless,
# for any platform (docker buildx build --platform linux/amd64,linux/arm64).
# The compiler runs on the build machine's platform and cross-compiles for
# TARGETOS/TARGETARCH, so no emulation is needed. test/packaging builds the
# binary with this file's `go build` line for amd64 and arm64.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY engine/ engine/
# The default Rego policies are embedded into the binary.
COPY policies/ policies/
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags "-s -w" -o /out/gitops-reverser ./cmd/gitops-reverser

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gitops-reverser /gitops-reverser
# nonroot: no shell, no package manager, no root.
USER 65532:65532
ENTRYPOINT ["/gitops-reverser"]
