# ferryd: build on Debian's DPDK 22.11, run with only the runtime libraries.
FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      libdpdk-dev libpcap-dev meson ninja-build pkg-config gcc nodejs \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY proto/ proto/
COPY dataplane/ dataplane/
RUN meson setup /build dataplane --buildtype=release && ninja -C /build ferryd ferry-ct-replay ferry-stt-pcap

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends dpdk libpcap0.8 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/ferryd /usr/local/bin/ferryd
COPY --from=build /build/ferry-ct-replay /build/ferry-stt-pcap /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/ferryd"]
