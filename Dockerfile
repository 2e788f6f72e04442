# dyplsq in one image: the worker (default command), the enqueue CLI and the
# dyplsim simulator, as static binaries on a distroless base, run as a
# non-root user.
#
#   docker build -t dyplsq .
#   docker run --rm dyplsq enqueue --help
#
# docker-compose.yml builds it and runs redis, dyplsim and the worker.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/worker ./cmd/enqueue ./cmd/dyplsim

# static-debian12 has CA certificates (for https://dyplsapi.aliyuncs.com),
# time zone data and /tmp; the nonroot tag runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
# 8080: worker UI, /metrics, /healthz, /readyz (MONITOR_ADDR); 8086: dyplsim.
EXPOSE 8080 8086
CMD ["worker"]
