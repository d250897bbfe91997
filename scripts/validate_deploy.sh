#!/usr/bin/env bash
# Validates the deployment files; exits non-zero on any invalid one. Installs nothing:
# `make validate-deploy` installs the tools (Debian's docker-compose, kubernetes-validate from the
# dev extra) and runs this.
#   - docker-compose.yml, with .env.example as its .env: `docker-compose config -q`;
#   - every Kubernetes manifest (k8s/base, k8s/secret.example.yaml) and each kustomize overlay as
#     `kubectl kustomize` renders it: `kubernetes-validate --strict` against Kubernetes $K8S_VERSION
#     (a kind it has no schema for, e.g. a misspelt one, fails too).
# Usage: scripts/validate_deploy.sh [ROOT]   ROOT: a checkout, or a copy of its deployment files.
set -euo pipefail
ROOT=$(cd "${1:-$(dirname "$0")/..}" && pwd)
K8S_VERSION=${K8S_VERSION:-1.33.0}
KUBERNETES_VALIDATE=${KUBERNETES_VALIDATE:-kubernetes-validate}

for tool in docker-compose "$KUBERNETES_VALIDATE" kubectl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "validate_deploy: $tool not found; \`make validate-deploy\` installs docker-compose and kubernetes-validate" \
         "(kubectl: any recent release, for \`kubectl kustomize\`)" >&2
    exit 2
  fi
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# docker-compose reads .env from the compose file's folder: validate a copy beside .env.example.
cp "$ROOT/docker-compose.yml" "$work/docker-compose.yml"
cp "$ROOT/.env.example" "$work/.env"
docker-compose -f "$work/docker-compose.yml" config -q
echo "docker-compose.yml: valid"

validate() {  # kubernetes-validate exits 0 on a kind it does not know (a warning): refuse that too
  local out
  if ! out=$("$KUBERNETES_VALIDATE" --strict --quiet -k "$K8S_VERSION" "$@" 2>&1) || [[ -n "$out" ]]; then
    echo "$out" >&2
    return 1
  fi
}
manifests=()
for file in "$ROOT"/k8s/*.yaml "$ROOT"/k8s/base/*.yaml; do
  [[ $(basename "$file") == kustomization.yaml ]] || manifests+=("$file")
done
validate "${manifests[@]}"
echo "k8s: ${#manifests[@]} manifests valid against Kubernetes $K8S_VERSION"
for overlay in "$ROOT"/k8s/overlays/*/; do
  name=$(basename "$overlay")
  kubectl kustomize "$overlay" > "$work/$name.yaml"
  validate "$work/$name.yaml"
  echo "k8s/overlays/$name: rendered and valid"
done
