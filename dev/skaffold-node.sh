#!/usr/bin/env sh
# skaffold's commands in skaffold.yaml's pagestream-node profile (skaffold splits its custom
# dependency command on spaces, so each goes through this script):
#   build COMPONENT    build $IMAGE from $BUILD_CONTEXT with buildah and load it into the node
#   inputs COMPONENT   the files the COMPONENT image is built from, as a JSON array
#   prepare            before the helm deploy: CRDs, the restricted namespace, and the
#                      chart without its dependency list
# PAGESTREAM_CLI says how to run `pagestream` (`pagestream cluster skaffold` sets it).
set -eu
cli=${PAGESTREAM_CLI:-python3 -m uv run --locked pagestream}
case "${1:-}" in
  build) exec $cli cluster build-image "$2" ;;
  inputs) exec $cli cluster image-inputs "$2" ;;
  prepare) exec $cli cluster prepare-release ;;
  *) echo "usage: $0 build|inputs COMPONENT | prepare" >&2; exit 2 ;;
esac
