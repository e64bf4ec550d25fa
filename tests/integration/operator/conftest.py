"""Operator-process fixtures; they live in ``operator_harness`` beside the helpers they use."""

from operator_harness import (  # noqa: F401  (pytest finds fixtures by name in conftest)
    api,
    cluster,
    core,
    crd_folder,
    crds,
    namespace,
    objects,
    operator,
)
