# Builds the gitops-reverser manager image: a static binary on distroless.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY engine/ engine/
# The default Rego policies are embedded into the binary.
COPY policies/ policies/
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/gitops-reverser ./cmd/gitops-reverser

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gitops-reverser /gitops-reverser
USER 65532:65532
ENTRYPOINT ["/gitops-reverser"]
