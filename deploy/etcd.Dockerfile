# etcd for the compose file's coordinator (Debian's etcd-server 3.4; no registry image).
#   podman build --format docker -f deploy/etcd.Dockerfile -t edgekv-etcd:dev .
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server etcd-client \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc/* /usr/share/man/* \
 && groupmod --gid 10002 etcd && usermod --uid 10002 --gid 10002 etcd \
 && mkdir -p /var/lib/etcd && chown 10002:10002 /var/lib/etcd && chmod 0700 /var/lib/etcd
USER 10002:10002
VOLUME /var/lib/etcd
EXPOSE 2379
ENV ETCDCTL_API=3
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
  CMD ["etcdctl", "--endpoints=http://127.0.0.1:2379", "--dial-timeout=2s", "endpoint", "health"]
ENTRYPOINT ["etcd"]
CMD ["--name", "etcd", "--data-dir", "/var/lib/etcd/data", \
     "--listen-client-urls", "http://0.0.0.0:2379", "--advertise-client-urls", "http://etcd:2379"]
