"""Upstream CustomResourceDefinitions, taken from the artifacts their projects publish.

pagestream's operator creates objects of other operators' kinds (the Kubeflow Spark operator's
``SparkApplication``, Strimzi's ``KafkaTopic``, prometheus-operator's ``PodMonitor`` and
``ServiceMonitor``), and the chart will create more (CloudNativePG ``Cluster``, Strimzi
``Kafka``...). Tests install the real definitions, never hand-written stubs:

- Go projects ship their CRD YAML inside their module zips: the modules are pinned in
  ``tools/crds/go/go.mod`` (``go.sum`` verifies each zip) and the files are copied out of the
  downloaded module folder.
- Strimzi publishes no CRD YAML to Maven Central; its build generates the CRDs from the API
  classes with ``io.strimzi:crd-generator``. ``tools/crds/strimzi/pom.xml`` pins both, and the
  generator is run here exactly as Strimzi's own build runs it.

The result is one flat folder of ``<plural>.<group>.yaml`` files in the cache, keyed by a digest
of the recipes and written to a temporary folder first, then renamed into place.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import yaml

from pagestream.stack.artifacts import _publish, _require, _run, go_module_source
from pagestream.stack.errors import StackError
from pagestream.stack.paths import TOOLS_DIR, content_key

log = logging.getLogger(__name__)

# The other operators' kinds the pagestream operator creates children of, by CRD name.
OPERATOR_CHILD_CRDS = (
    "sparkapplications.sparkoperator.k8s.io",
    "kafkatopics.kafka.strimzi.io",
    "podmonitors.monitoring.coreos.com",
    "servicemonitors.monitoring.coreos.com",
)

GO_RECIPE = TOOLS_DIR / "crds" / "go"
STRIMZI_RECIPE = TOOLS_DIR / "crds" / "strimzi"

# Module -> CRD files inside its zip. Versions come from tools/crds/go/go.mod.
GO_MODULE_CRDS: dict[str, tuple[str, ...]] = {
    "github.com/kubeflow/spark-operator/v2": (
        "config/crd/bases/sparkoperator.k8s.io_sparkapplications.yaml",
        "config/crd/bases/sparkoperator.k8s.io_scheduledsparkapplications.yaml",
    ),
    "github.com/prometheus-operator/prometheus-operator": (
        "example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml",
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
    ),
    "github.com/cloudnative-pg/cloudnative-pg": (
        "config/crd/bases/postgresql.cnpg.io_clusters.yaml",
    ),
}

# Strimzi API classes to generate CRDs for (the ones pagestream or its chart create).
STRIMZI_KINDS: tuple[str, ...] = (
    "io.strimzi.api.kafka.model.topic.KafkaTopic",
    "io.strimzi.api.kafka.model.user.KafkaUser",
    "io.strimzi.api.kafka.model.kafka.Kafka",
    "io.strimzi.api.kafka.model.nodepool.KafkaNodePool",
)
# The arguments Strimzi's own build passes to the generator (io.strimzi:api's pom).
STRIMZI_GENERATOR_ARGS: tuple[str, ...] = (
    "--label",
    "app:strimzi",
    "--label",
    "strimzi.io/crd-install:true",
    "--target-kube",
    "1.16+",
    "--crd-api-version",
    "v1",
    "--api-versions",
    "v1",
    "--storage-version",
    "v1",
)
# Strimzi 1.x classes are compiled for Java 21 (class file version 65).
STRIMZI_MIN_JAVA = 21


def recipe_key() -> str:
    return content_key(
        GO_RECIPE / "go.mod",
        GO_RECIPE / "go.sum",
        STRIMZI_RECIPE / "pom.xml",
        repr(sorted(GO_MODULE_CRDS.items())),
        repr(STRIMZI_KINDS),
        repr(STRIMZI_GENERATOR_ARGS),
    )


def pinned_versions() -> dict[str, str]:
    """Module or artifact -> pinned version, read from the recipes."""
    gomod = (GO_RECIPE / "go.mod").read_text()
    versions = {}
    for module in GO_MODULE_CRDS:
        m = re.search(rf"^\s*{re.escape(module)} (v\S+)", gomod, re.M)
        if not m:
            raise StackError(f"{module} is not required by {GO_RECIPE}/go.mod")
        versions[module] = m.group(1)
    pom = (STRIMZI_RECIPE / "pom.xml").read_text()
    m = re.search(r"<strimzi.version>([^<]+)</strimzi.version>", pom)
    if not m:
        raise StackError(f"{STRIMZI_RECIPE}/pom.xml has no <strimzi.version>")
    versions["io.strimzi"] = m.group(1)
    return versions


def upstream_crds(cache: Path) -> Path:
    """Fetch (once) and return the folder holding every upstream CRD as ``<name>.yaml``."""
    versions = pinned_versions()
    tag = "-".join(
        [
            f"spark{versions['github.com/kubeflow/spark-operator/v2']}",
            f"strimzi{versions['io.strimzi']}",
            f"prom{versions['github.com/prometheus-operator/prometheus-operator']}",
            f"cnpg{versions['github.com/cloudnative-pg/cloudnative-pg']}",
        ]
    )
    final = cache / "crds" / f"{tag}-{recipe_key()}"
    if (final / ".complete").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".crds-", dir=final.parent))
    try:
        with tempfile.TemporaryDirectory(prefix=".strimzi-", dir=final.parent) as scratch:
            for source in _go_module_crds() + _strimzi_crds(Path(scratch)):
                _store(source, tmp)
        (tmp / ".complete").write_text("")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _publish(tmp, final)
    return final


def install_crds(
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    files: list[Path],
    timeout: str = "60s",
) -> list[str]:
    """Apply CRD files (server-side) with ``kubectl`` (a control plane's own wrapper) and wait
    until each is Established; their names."""
    for path in files:
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    names = [yaml.safe_load(p.read_text())["metadata"]["name"] for p in files]
    kubectl(
        "wait", "--for=condition=Established", f"--timeout={timeout}", *[f"crd/{n}" for n in names]
    )
    return names


def crd_file(folder: Path, name: str) -> Path:
    """The file of one CRD (``sparkapplications.sparkoperator.k8s.io``) in ``folder``."""
    path = folder / f"{name}.yaml"
    if not path.exists():
        raise StackError(f"upstream CRD {name} is not among {sorted(folder.glob('*.yaml'))}")
    return path


def _store(source: Path, folder: Path) -> None:
    """Copy one CRD file into ``folder`` under its CRD name, checking it is one."""
    docs = [d for d in yaml.safe_load_all(source.read_text()) if d]
    if len(docs) != 1 or docs[0].get("kind") != "CustomResourceDefinition":
        raise StackError(f"{source} is not exactly one CustomResourceDefinition")
    name = docs[0]["metadata"]["name"]
    shutil.copyfile(source, folder / f"{name}.yaml")


def _go_module_crds() -> list[Path]:
    files: list[Path] = []
    for module, paths in GO_MODULE_CRDS.items():
        module_dir = go_module_source(module, cwd=GO_RECIPE)
        files += [module_dir / p for p in paths]
    return files


def _strimzi_crds(scratch: Path) -> list[Path]:
    """Generate Strimzi's CRDs into ``scratch`` (which also holds the jars) and list them."""
    mvn = _require("mvn", "install Maven (Debian package `maven`) or run `make bootstrap`")
    jars = scratch / ".strimzi-jars"
    out = scratch / ".strimzi-out"
    out.mkdir()
    _run(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(STRIMZI_RECIPE / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={jars}",
            "-DincludeScope=runtime",
        ],
        what="fetching Strimzi's api and crd-generator jars with Maven",
    )
    targets = [f"{cls}={out / (cls.rsplit('.', 1)[1] + '.yaml')}" for cls in STRIMZI_KINDS]
    _run(
        [
            str(find_java(STRIMZI_MIN_JAVA)),
            "-cp",
            f"{jars}/*",
            "io.strimzi.crdgenerator.CrdGenerator",
            *STRIMZI_GENERATOR_ARGS,
            "--yaml",
            *targets,
        ],
        what="generating Strimzi CRDs with io.strimzi:crd-generator",
    )
    generated = sorted(out.glob("*.yaml"))
    if len(generated) != len(STRIMZI_KINDS):
        raise StackError(f"the Strimzi CRD generator wrote {generated}, not {len(STRIMZI_KINDS)}")
    return generated


def java_major(java: Path) -> int | None:
    proc = subprocess.run(
        [str(java), "-version"], capture_output=True, text=True, check=False, timeout=60
    )
    m = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def find_java(min_major: int) -> Path:
    """A ``java`` of at least ``min_major``: $JAVA_HOME, then PATH, then the JDKs in /usr/lib/jvm
    (this machine kind carries a second, newer Temurin JDK beside the default OpenJDK 17)."""
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path))
    candidates += sorted(Path("/usr/lib/jvm").glob("*/bin/java"), reverse=True)
    for java in candidates:
        if java.exists() and (java_major(java) or 0) >= min_major:
            return java
    raise StackError(
        f"Strimzi's CRD generator needs Java {min_major} or newer; found none of "
        f"{[str(c) for c in candidates]}",
        hint="install a JDK 21+ (e.g. Temurin) under /usr/lib/jvm or set JAVA_HOME",
    )
