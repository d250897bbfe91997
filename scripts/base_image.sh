#!/usr/bin/env bash
# A Debian bookworm base image with Python 3.11, built without an image registry: debootstrap
# makes the root filesystem from Debian's packages, `docker import` turns it into an image.
# `make test-compose` builds the cpu image on it (--build-arg PYTHON_BASE=studio-base:bookworm) and
# the test stack's Postgres and Redis (tests/deploy/images/). python-is-python3 gives the `python`
# that python:3.11-slim has and the Dockerfile calls. Needs root, debootstrap and a Docker engine.
# Usage: scripts/base_image.sh [TAG]   (default studio-base:bookworm; an existing TAG is kept:
# `docker rmi TAG` to build it again). DEBIAN_MIRROR=... to use another mirror.
set -euo pipefail
TAG=${1:-studio-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
HOST_CA_BUNDLE=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
PACKAGES=python3.11,python3.11-venv,python3-pip,python-is-python3,ca-certificates,netbase,tzdata

if docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "base_image: $TAG exists, kept"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "base_image: debootstrap not found (apt-get install debootstrap)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! debootstrap --variant=minbase --include="$PACKAGES" bookworm "$work/root" "$MIRROR" > "$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
fi
# The certificate authorities this machine trusts beyond Debian's (in CI, a TLS-intercepting
# proxy's): the image is built for this machine, and pip and apt in the builds on it go out
# through its network.
python3 - "$HOST_CA_BUNDLE" "$work/root/etc/ssl/certs/ca-certificates.crt" \
  "$work/root/usr/local/share/ca-certificates" <<'PYTHON'
import re
import sys
from pathlib import Path

pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
host, image, target = (Path(arg) for arg in sys.argv[1:])
known = set(pem.findall(image.read_text()))
for n, cert in enumerate(cert for cert in pem.findall(host.read_text()) if cert not in known):
    (target / f"host-{n}.crt").write_text(cert + "\n")
PYTHON
chroot "$work/root" update-ca-certificates >/dev/null 2>&1
# Security updates for the images built on it; no package cache or lists in the image.
cat > "$work/root/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
rm -rf "$work"/root/var/cache/apt/archives/*.deb "$work"/root/var/lib/apt/lists/*
# An imported image has no environment: PATH as Debian's images set it (the Dockerfile's
# `ENV PATH=/opt/venv/bin:$PATH` extends it).
tar -C "$work/root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' - "$TAG" >/dev/null
echo "base_image: $TAG built ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1 / 1e6}'))"
