"""The pinned recipe for upstream CRDs (tools/crds) is complete and keyed by its versions."""

from __future__ import annotations

from pagestream.stack import crds


def test_every_module_with_crds_is_pinned() -> None:
    versions = crds.pinned_versions()
    assert set(crds.GO_MODULE_CRDS) | {"io.strimzi"} == set(versions)
    assert all(v.lstrip("v")[0].isdigit() for v in versions.values())
    gosum = (crds.GO_RECIPE / "go.sum").read_text()
    for module, version in versions.items():
        if module != "io.strimzi":
            assert f"{module} {version} h1:" in gosum, f"{module} has no checksum in go.sum"


def test_the_crds_the_operator_needs_are_in_the_recipe() -> None:
    files = [p for paths in crds.GO_MODULE_CRDS.values() for p in paths]
    for name in (
        "sparkoperator.k8s.io_sparkapplications.yaml",
        "monitoring.coreos.com_podmonitors.yaml",
        "monitoring.coreos.com_servicemonitors.yaml",
    ):
        assert any(f.endswith(name) for f in files), name
    assert "io.strimzi.api.kafka.model.topic.KafkaTopic" in crds.STRIMZI_KINDS


def test_the_cache_key_follows_the_recipe() -> None:
    key = crds.recipe_key()
    assert key == crds.recipe_key()
    assert len(key) == 12
