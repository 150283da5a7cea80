# The companion's image, for those who build with Docker (or Podman, or
# Buildah). `./build.sh dist` writes the same image without a container
# engine, as an OCI layout in dist/oci/portcullis: the same static binary,
# user, ports, volumes and entrypoint (a test holds the two together).
#
#   docker build -t portcullis .
#   docker run --rm -v portcullis-config:/etc/portcullis portcullis \
#     config init --listen 0.0.0.0:8300 --ingress-listen 0.0.0.0:8303 \
#     --database /var/lib/portcullis/portcullis.sqlite
#   docker run -d -p 8300:8300 -p 8303:8303 \
#     -v portcullis-config:/etc/portcullis -v portcullis-data:/var/lib/portcullis portcullis

FROM docker.io/library/rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p portcullis --bin portcullis \
    && mkdir -p /rootfs/etc/portcullis /rootfs/var/lib/portcullis /rootfs/tmp /rootfs/usr/local/bin /rootfs/etc/ssl/certs \
    && cp target/x86_64-unknown-linux-musl/release/portcullis /rootfs/usr/local/bin/portcullis \
    && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
    && echo 'portcullis:x:65532:65532:portcullis:/var/lib/portcullis:/sbin/nologin' >/rootfs/etc/passwd \
    && echo 'portcullis:x:65532:' >/rootfs/etc/group \
    && chown 65532:65532 /rootfs/etc/portcullis /rootfs/var/lib/portcullis \
    && chmod 0750 /rootfs/etc/portcullis /rootfs/var/lib/portcullis \
    && chmod 1777 /rootfs/tmp

# No shell, no package manager: the binary, its CA certificates, and a user.
FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
ENV PATH=/usr/local/bin PORTCULLIS_CONFIG=/etc/portcullis/portcullis.toml
WORKDIR /var/lib/portcullis
VOLUME ["/etc/portcullis", "/var/lib/portcullis"]
EXPOSE 8300/tcp 8303/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["serve"]
