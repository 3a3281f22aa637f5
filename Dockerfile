# polysocket: a static binary on a distroless base, run as non-root.
#
#   docker build -t polysocket --build-arg VERSION=$(git describe --always) .
#   docker run --rm -p 8080:8080 polysocket            # `both`, demo at http://localhost:8080/
#   docker run --rm polysocket relay --help
#
# See docs/OPERATIONS.md (this image) and docs/DEPLOY.md (a cluster);
# deploy/compose.yaml runs Redis, two routers and two relays.

# ---- build ----
FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so a source change does not re-download them.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# CGO off: a fully static binary that runs on distroless/static (or
# scratch); -trimpath drops build paths for reproducible builds.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/polysocket . \
 && /out/polysocket --version

# ---- run ----
# distroless/static has CA certificates (for wss:// targets and rediss://),
# tzdata and a nonroot user (65532), and no shell or package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/polysocket /usr/local/bin/polysocket
USER nonroot:nonroot
ENV POLYSOCKET_LOG_FORMAT=json
# The admin listener (/metrics, /debug/pprof/) on the container network,
# for a Prometheus there. Not EXPOSEd, so `docker run -P` does not
# publish it: never publish it (docs/OPERATIONS.md).
ENV POLYSOCKET_ADMIN_LISTEN=:9090
# both: 8080; router: 8081; relay: 8082 (the subcommands' defaults, but
# listening on all interfaces needs --listen :PORT inside a container).
EXPOSE 8080 8081 8082
# SIGTERM drains a relay; give the container drain-timeout + close-grace +
# a few seconds before SIGKILL (docker stop -t 45, stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/polysocket"]
CMD ["both", "--listen", ":8080"]
