# The CoreDNS binary with fluxguard (cmd/coredns-fluxguard), shipped the way
# CoreDNS's own image ships coredns: a static binary allowed to bind port 53,
# on distroless, run as distroless's non-root user. A deployment passes the
# arguments, as Kubernetes' CoreDNS Deployment does (-conf
# /etc/coredns/Corefile). No container engine runs on the project's machines:
# deploy/kubernetes's TestDockerfile keeps this file in step with the build CI
# runs and with the manifests.
#
#   docker build -t ghcr.io/fluxguard/coredns-fluxguard:latest .

# The Go release go.mod asks for.
FROM golang:1.26.8-bookworm AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get -qq update \
    && apt-get -qq --no-install-recommends install libcap2-bin
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o coredns ./cmd/coredns-fluxguard
# Port 53 without root.
RUN setcap cap_net_bind_service=+ep coredns

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/coredns /coredns
# distroless's nonroot user, by number, so that Kubernetes can check
# runAsNonRoot against the image.
USER 65532:65532
WORKDIR /
# DNS, the prometheus plugin's metrics and fluxguard's report, as the
# manifests in deploy/ configure them.
EXPOSE 53/udp 53/tcp 9153/tcp 9254/tcp
ENTRYPOINT ["/coredns"]
CMD ["-conf", "/etc/coredns/Corefile"]
