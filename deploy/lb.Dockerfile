# The compose file's client endpoint: nginx-light round-robin over edge1..edge3 (nginx.conf).
#   podman build --format docker -f deploy/lb.Dockerfile -t edgekv-lb:dev .
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc/* /usr/share/man/* \
      /etc/nginx/sites-enabled/* /var/log/nginx/*
COPY deploy/nginx.conf /etc/nginx/edgekv.conf
COPY deploy/lb-health.sh /usr/local/bin/lb-health
RUN chmod 0755 /usr/local/bin/lb-health
USER www-data
EXPOSE 8787
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 CMD ["/usr/local/bin/lb-health"]
ENTRYPOINT ["nginx", "-e", "stderr", "-c", "/etc/nginx/edgekv.conf", "-g", "daemon off;"]
