#!/bin/bash
# Health of the lb service: GET /healthz through nginx answers 200 (an edge is reachable).
# bash's /dev/tcp: the image has no curl.
set -u
exec 3<>/dev/tcp/127.0.0.1/8787 || exit 1
printf 'GET /healthz HTTP/1.0\r\nHost: lb\r\n\r\n' >&3
read -r -t 3 _ code _ <&3 || exit 1
[ "$code" = 200 ]
