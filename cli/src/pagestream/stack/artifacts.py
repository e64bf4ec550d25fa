"""Pinned third-party artifacts, fetched or built once into the cache.

Maven resolves the Kafka broker and the Spark connector jars from the poms in ``tools/maven``;
Go builds the Kubernetes binaries (control plane, node, kubectl), etcd, CoreDNS and helm from
the wrapper modules in ``tools/go``. Every cache entry is keyed by a digest of its recipe, and is written to a
temporary folder first and renamed into place, so an interrupted fetch never looks complete.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pagestream.stack.errors import StackError
from pagestream.stack.paths import TOOLS_DIR, content_key

log = logging.getLogger(__name__)


def _run(
    argv: list[str], *, what: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> None:
    log.info("%s: %s", what, " ".join(argv))
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip().splitlines()[-40:]
        raise StackError(
            f"{what} failed (exit {proc.returncode}):\n" + "\n".join(out),
            hint="check that the package registries are reachable, then run `make bootstrap` again",
        )


def _require(binary: str, hint: str) -> str:
    path = shutil.which(binary)
    if not path:
        raise StackError(f"`{binary}` is not on PATH", hint=hint)
    return path


def _publish(tmp: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():  # another process won the race; theirs is as good as ours
        shutil.rmtree(tmp, ignore_errors=True)
        return
    os.replace(tmp, final)


# --- Maven -----------------------------------------------------------------------------------


def maven_jars(cache: Path, recipe: str) -> Path:
    """Resolve ``tools/maven/<recipe>/pom.xml`` and return the folder holding its runtime jars."""
    pom = TOOLS_DIR / "maven" / recipe / "pom.xml"
    version = re.search(r"<version>([^<]+)</version>", pom.read_text())
    final = cache / "maven" / f"{recipe}-{version.group(1) if version else 'x'}-{content_key(pom)}"
    if (final / ".complete").exists():
        return final
    mvn = _require("mvn", "install Maven (Debian package `maven`) or run `make bootstrap`")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{recipe}-", dir=final.parent))
    _run(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
            "-DincludeScope=runtime",
        ],
        what=f"fetching {recipe} jars with Maven",
    )
    (tmp / ".complete").write_text("")
    _publish(tmp, final)
    return final


def classpath(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jar"))


# --- Go --------------------------------------------------------------------------------------


def required_version(module_dir: Path, module: str) -> str:
    """The version of ``module`` that ``module_dir/go.mod`` requires."""
    gomod = (module_dir / "go.mod").read_text()
    m = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} (v\S+)", gomod, re.M)
    if not m:
        raise StackError(f"{module} is not required by {module_dir}/go.mod")
    return m.group(1)


@dataclass(frozen=True)
class GoToolset:
    """A wrapper module under ``tools/go/<name>`` and the commands built from it."""

    name: str
    packages: tuple[str, ...]
    # For binaries that run in an image with no C library (FROM scratch): no cgo.
    static: bool = False

    @property
    def module_dir(self) -> Path:
        return TOOLS_DIR / "go" / self.name

    def required_version(self, module: str) -> str:
        return required_version(self.module_dir, module)

    def ldflags(self) -> str:
        flags = ["-s", "-w"]
        if self.name == "k8s":
            v = self.required_version("k8s.io/kubernetes")
            major, minor = v.lstrip("v").split(".")[:2]
            # Without these /version reports v0.0.0 and charts' kubeVersion checks fail.
            for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
                flags += [
                    f"-X {pkg}.gitVersion={v}",
                    f"-X {pkg}.gitMajor={major}",
                    f"-X {pkg}.gitMinor={minor}",
                    f"-X {pkg}.gitTreeState=clean",
                ]
        elif self.name == "skaffold":
            v = self.required_version("github.com/GoogleContainerTools/skaffold/v2")
            flags.append(
                f"-X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version={v}"
            )
        elif self.name == "prometheus-operator":
            v = self.required_version(PROMETHEUS_OPERATOR_MODULE)
            common = "github.com/prometheus/common/version"
            flags += [f"-X {common}.Version={v.lstrip('v')}", f"-X {common}.Branch=release"]
        elif self.name == "helm":
            v = self.required_version("helm.sh/helm/v3")
            kube = self.required_version("k8s.io/client-go")  # v0.37.x -> Kubernetes 1.37
            flags += [
                f"-X helm.sh/helm/v3/internal/version.version={v}",
                "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1",
                f"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={kube.split('.')[1]}",
            ]
        return " ".join(flags)

    def cache_key(self) -> str:
        return content_key(
            self.module_dir / "go.mod",
            self.module_dir / "go.sum",
            *sorted(self.module_dir.glob("*.go")),  # a wrapper module with code of its own
            self.ldflags(),
            *self.packages,
            *(["CGO_ENABLED=0"] if self.static else []),
        )


K8S_TOOLS = GoToolset(
    "k8s",
    (
        "k8s.io/kubernetes/cmd/kube-apiserver",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
        "go.etcd.io/etcd/server/v3",
        # The node (pagestream.stack.node): one build, so every binary is of the same version.
        "k8s.io/kubernetes/cmd/kube-scheduler",
        "k8s.io/kubernetes/cmd/kubelet",
        "k8s.io/kubernetes/cmd/kube-proxy",
        "k8s.io/kubernetes/cmd/kubectl",
    ),
)
COREDNS_TOOLS = GoToolset("coredns", ("github.com/coredns/coredns",), static=True)
# The node's dynamic volume provisioner (tools/go/provisioner/main.go).
PROVISIONER_TOOLS = GoToolset("provisioner", ("pagestream.dev/tools/provisioner",))
HELM_TOOLS = GoToolset("helm", ("helm.sh/helm/v3/cmd/helm",))
# prometheus-operator and its config-reloader, for the node's platform (stack/node/platform.py).
PROMETHEUS_OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator"
PROMETHEUS_OPERATOR_TOOLS = GoToolset(
    "prometheus-operator",
    (
        f"{PROMETHEUS_OPERATOR_MODULE}/cmd/operator",
        f"{PROMETHEUS_OPERATOR_MODULE}/cmd/prometheus-config-reloader",
    ),
    static=True,
)
SKAFFOLD_TOOLS = GoToolset(
    "skaffold", ("github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold",)
)
# sigs.k8s.io/cli-utils' kstatus as a command (tools/go/kstatus/main.go): JSON objects on stdin,
# one verdict a line; the operator's tests ask it what Flux and kpt would see.
KSTATUS_TOOLS = GoToolset("kstatus", ("pagestream.dev/tools/kstatus",))


def go_binaries(cache: Path, toolset: GoToolset) -> Path:
    """Build the toolset's commands once; return the folder holding them."""
    final = cache / "go" / f"{toolset.name}-{toolset.cache_key()}"
    if (final / ".complete").exists():
        return final
    go = _require("go", "install Go 1.24 or newer (it comes with this machine kind)")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{toolset.name}-", dir=final.parent))
    env = dict(os.environ, GOFLAGS="-buildvcs=false")
    if toolset.static:
        env["CGO_ENABLED"] = "0"
    _run(
        [go, "build", "-ldflags", toolset.ldflags(), "-o", str(tmp) + "/", *toolset.packages],
        what=f"building {toolset.name} tools with Go (10-20 minutes the first time)",
        cwd=toolset.module_dir,
        env=env,
    )
    # go.etcd.io/etcd/server/v3 builds a binary named after its module, not "etcd".
    for built in ("server", "v3"):
        if (tmp / built).exists():
            (tmp / built).rename(tmp / "etcd")
    (tmp / ".complete").write_text("")
    _publish(tmp, final)
    return final


def go_module_source(module: str, *, cwd: Path) -> Path:
    """The source folder of a Go module (``path`` or ``path@version``), fetched by
    `go mod download` into Go's module cache (checked against go.sum / the checksum database).
    ``cwd`` is the module whose go.mod resolves an unversioned path."""
    go = _require("go", "install Go 1.24 or newer (it comes with this machine kind)")
    log.info("go mod download %s", module)
    proc = subprocess.run(
        [go, "mod", "download", "-json", module],
        cwd=cwd,
        env=dict(os.environ, GOFLAGS="-mod=mod"),
        capture_output=True,
        text=True,
        check=False,
    )
    info = json.loads(proc.stdout) if proc.stdout.strip() else {}
    if proc.returncode != 0 or info.get("Error"):
        raise StackError(
            f"go mod download {module} failed:\n"
            + (info.get("Error") or (proc.stdout + proc.stderr).strip()[-2000:]),
            hint="check that the Go module proxy is reachable, then run `make bootstrap` again",
        )
    return Path(info["Dir"])


def pause_binary(cache: Path) -> Path:
    """The pod sandbox's pause process: Kubernetes' own ``build/pause/linux/pause.c`` from the
    pinned k8s.io/kubernetes module, compiled static (no registry image is needed for it)."""
    version = K8S_TOOLS.required_version("k8s.io/kubernetes")
    final = cache / "pause" / f"pause-{version}"
    if (final / ".complete").exists():
        return final / "pause"
    gcc = _require("gcc", "install gcc (Debian package `gcc`) or run `make bootstrap`")
    module = go_module_source(f"k8s.io/kubernetes@{version}", cwd=K8S_TOOLS.module_dir)
    source = module / "build" / "pause" / "linux" / "pause.c"
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".pause-", dir=final.parent))
    _run(
        [
            gcc,
            "-Os",
            "-static",
            "-Wall",
            f"-DVERSION={version}",
            "-o",
            str(tmp / "pause"),
            str(source),
        ],
        what="compiling the pause binary",
    )
    (tmp / ".complete").write_text("")
    _publish(tmp, final)
    return final / "pause"


# --- The platform operators, built inside their own modules ------------------------------------

# The modules whose CRDs tools/crds/go pins are built at those same versions, so the operator on
# the node and the CRDs installed for it can never drift apart.
PLATFORM_PINS = TOOLS_DIR / "crds" / "go"


@dataclass(frozen=True)
class UpstreamBuild:
    """Commands built from an upstream Go module's own source tree, with its own go.mod and
    go.sum (their ``replace`` lines are why a wrapper module cannot build them). Static, for
    images with no C library."""

    name: str
    module: str
    packages: tuple[str, ...]
    # The module whose go.mod pins this one's version (and whose go.sum verifies it).
    pins: Path = PLATFORM_PINS

    def version(self) -> str:
        return required_version(self.pins, self.module)

    def ldflags(self) -> str:
        flags = ["-s", "-w"]
        v = self.version()
        if self.name == "spark-operator":
            flags.append(f"-X k8s.io/component-base/version.gitVersion={v}")
        elif self.name == "prometheus":
            # Module v0.3MM.P is Prometheus 3.MM.P.
            major, minor, patch = v.lstrip("v").split(".")
            release = f"{int(major) + 3}.{int(minor) - 300}.{patch}"
            flags += [
                f"-X github.com/prometheus/common/version.Version={release}",
                "-X github.com/prometheus/common/version.Branch=release",
            ]
        return " ".join(flags)

    def cache_key(self) -> str:
        return content_key(
            self.pins / "go.sum", self.module, self.version(), self.ldflags(), *self.packages
        )


SPARK_OPERATOR_BUILD = UpstreamBuild(
    "spark-operator", "github.com/kubeflow/spark-operator/v2", ("./cmd/operator",)
)
CNPG_BUILD = UpstreamBuild(
    "cloudnative-pg", "github.com/cloudnative-pg/cloudnative-pg", ("./cmd/manager",)
)
PROMETHEUS_BUILD = UpstreamBuild(
    "prometheus",
    "github.com/prometheus/prometheus",
    ("./cmd/prometheus",),
    pins=TOOLS_DIR / "go" / "prometheus",
)
PLATFORM_BUILDS = (SPARK_OPERATOR_BUILD, CNPG_BUILD, PROMETHEUS_BUILD)


def upstream_source(build: UpstreamBuild) -> Path:
    """The module's source tree at the pinned version (read-only, in Go's module cache)."""
    return go_module_source(f"{build.module}@{build.version()}", cwd=build.pins)


def upstream_binaries(cache: Path, build: UpstreamBuild) -> Path:
    """Build the module's commands once (2-3 minutes each, cold); return the folder."""
    final = cache / "go" / f"{build.name}-{build.cache_key()}"
    if (final / ".complete").exists():
        return final
    go = _require("go", "install Go 1.24 or newer (it comes with this machine kind)")
    source = upstream_source(build)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{build.name}-", dir=final.parent))
    env = dict(os.environ, GOFLAGS="-buildvcs=false -mod=readonly", CGO_ENABLED="0")
    _run(
        [
            go,
            "build",
            "-ldflags",
            build.ldflags(),
            "-o",
            str(tmp) + "/",
            *build.packages,
        ],
        what=f"building {build.name} {build.version()} with Go (2-5 minutes the first time)",
        cwd=source,
        env=env,
    )
    (tmp / ".complete").write_text("")
    _publish(tmp, final)
    return final
