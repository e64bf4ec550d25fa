#!/usr/bin/env bash
# Install everything pagestream needs on a fresh Debian machine, idempotently:
#   system packages (PostgreSQL 15, Prometheus), uv, the locked Python environment,
#   the pinned Kafka/Spark jars (Maven), a class-data archive of Spark's JVM and, with --kube, the
#   Kubernetes binaries, etcd, CoreDNS and helm (Go), the local node's runtime (containerd, runc,
#   CNI plugins, iptables from Debian) and pagestream's images (buildah on debootstrap bases);
#   with --browser, Chromium (the tests open the HTML dashboard snapshot in it, headless).
# Downloads and builds are cached under ~/.cache/pagestream (PAGESTREAM_CACHE_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
# uv is used as `python3 -m uv`, so it works whether or not pip put a `uv` on PATH.
uv() { python3 -m uv "$@"; }
want_kube=0
want_browser=0
for arg in "$@"; do
  case "$arg" in
    --kube) want_kube=1 ;;
    --browser) want_browser=1 ;;
    *) echo "usage: $0 [--kube] [--browser]" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "need root for: $* (install sudo or run as root)" >&2; exit 1
  fi
}

missing=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql-15)
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if [ "$want_browser" = 1 ]; then
  command -v chromium >/dev/null || missing+=(chromium)
fi
if [ "$want_kube" = 1 ]; then
  # The local node (pagestream cluster), its daemonless image builds, and podman's
  # Docker-compatible API for skaffold.
  for tool in containerd runc iptables conntrack debootstrap buildah podman gcc; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
  done
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  command -v ip >/dev/null || missing+=(iproute2)
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  # --no-install-recommends: no node-exporter or other services we do not use.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

for tool in java mvn; do
  command -v "$tool" >/dev/null || { echo "$tool is still missing after apt-get" >&2; exit 1; }
done
if [ "$want_kube" = 1 ]; then
  if ! command -v go >/dev/null; then
    echo "Go 1.24+ is needed to build kube-apiserver, etcd and helm (Debian's is too old): https://go.dev/doc/install" >&2
    exit 1
  fi
  command -v kubectl >/dev/null || echo "note: kubectl not found; tests that call it will fail" >&2
fi

if [ "$(uv --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  say "installing uv $UV_VERSION"
  python3 -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

say "syncing the locked Python environment (.venv)"
uv sync --all-packages --locked --quiet

say "fetching pinned artifacts into the cache"
if [ "$want_kube" = 1 ]; then
  uv run --locked pagestream install --kube
else
  uv run --locked pagestream install
fi
