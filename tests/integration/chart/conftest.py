"""Chart fixtures; they live in ``chart_harness`` beside the helpers they use."""

from chart_harness import chart, chart_crds, chart_namespace  # noqa: F401
