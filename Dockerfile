# syntax=docker/dockerfile:1
# Tandem in a scratch image: one static binary, a non-root user, /data for the state file.
#   docker build -t tandem .
#   docker run -d -p 3000:3000 -v tandem-data:/data -e ALLOWED_ORIGINS=http://jellyfin.lan:8096 tandem

FROM rust:1-slim AS build
WORKDIR /src
COPY . .
# crt-static links glibc statically. Naming --target (the builder's own triple) keeps that
# flag off build scripts and proc-macros, which must stay dynamic. getrandom calls glibc's
# getrandom() directly: its default looks the function up with dlsym, which a static binary
# cannot, and then wants /dev/urandom.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    target="$(rustc -vV | sed -n 's/^host: //p')" \
 && RUSTFLAGS='-C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"' \
    cargo build --release --locked --bin tandem --target "$target" \
 && mkdir -p /out/data \
 && cp "target/$target/release/tandem" /out/tandem

FROM scratch
COPY --from=build /out/tandem /tandem
# scratch has no mkdir: /data comes from the builder, owned by the runtime user. A new named
# volume mounted there starts as a copy of it, ownership included.
COPY --from=build --chown=10001:10001 /out/data /data
USER 10001:10001
ENV STATE_FILE=/data/tandem-state.json
VOLUME ["/data"]
EXPOSE 3000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["/tandem", "healthcheck"]
ENTRYPOINT ["/tandem"]
