"""skaffold on the local node: the inner loop without a Docker engine or a registry.

skaffold.yaml's ``pagestream-node`` profile builds each image with a custom build command,
``pagestream cluster build-image``, which builds it with buildah (pagestream.stack.images), tags
it as skaffold asks and imports it into the node's containerd. skaffold then looks the image up
through a Docker-compatible API to learn its id and to find cached builds: Podman's API service
on a private socket, over the same image storage buildah writes, provides that.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pagestream.stack.artifacts import K8S_TOOLS, SKAFFOLD_TOOLS, go_binaries
from pagestream.stack.errors import StackError
from pagestream.stack.helm import Helm, dependency_free_chart
from pagestream.stack.images import ImageBuilder, ImageRef, component_tag
from pagestream.stack.node.node import LocalNode
from pagestream.stack.node.release import AppRelease
from pagestream.stack.process import ManagedProcess, wait_until

PROFILE = "pagestream-node"
# Where the profile's deploy hook writes the chart without its dependency list (skaffold.yaml
# names the same path, relative to the checkout skaffold runs in).
CHART_COPY = Path(".pagestream") / "skaffold" / "chart"


def build_image(node: LocalNode, component: str, image: str, context: Path) -> ImageRef:
    """What skaffold's custom build runs: build ``component`` from ``context``, tag it
    ``image`` (skaffold's tag) and load it into the node."""
    repository, _, tag = image.rpartition(":")
    if not repository.startswith("localhost/") or not tag:
        raise StackError(
            f"skaffold asked for {image!r}: the node's images are named localhost/<name>:<tag>",
            hint="run skaffold with --default-repo=localhost (pagestream cluster skaffold does)",
        )
    builder = ImageBuilder(node.paths)
    built = builder.build_component(component, source=context)
    wanted = ImageRef(repository.removeprefix("localhost/"), tag)
    builder.tag(built, wanted)
    node.import_images([builder.archive(wanted)])
    # Every source change is a new skaffold tag: the archives of the ones before are dead
    # weight (~1.2 GB for the Spark image), the node holds what it imported.
    builder.prune_archives({wanted.name: {wanted.tag, component_tag(component)}})
    # skaffold deploys a local build by a tag of its own, <name>:<image id>, which it creates
    # through the Docker API; the node needs that name too.
    node.tag_image(wanted.reference, f"{repository}:{builder.image_id(wanted)}")
    return wanted


def prepare_release(node: LocalNode, checkout: Path) -> Path:
    """skaffold's pre-deploy hook: what `pagestream cluster deploy` does before helm (the
    upstream CRDs, the namespace under Pod Security restricted), and the chart without its
    dependency list, written where the profile's chartPath points."""
    release = AppRelease(node, namespace="pagestream")
    release.install_upstream_crds()
    release.ensure_namespace()
    dest = checkout / CHART_COPY
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dependency_free_chart(checkout / "charts" / "pagestream", dest)


@dataclass
class DockerApi:
    """Podman's Docker-compatible API over pagestream's image storage, on a private socket.

    Podman ties its run folder to the storage it serves, so the run folder (and the socket in
    it) is one per image storage, shared by every node on this machine; the service's pid file
    is the node's own, under its state folder. So taking down one node (its `down`, its
    session's watchdog, the next test session ending what a dead one left) never stops the
    service another node's skaffold is using."""

    node: LocalNode

    @property
    def storage(self) -> Path:
        return ImageBuilder(self.node.paths).root

    @property
    def run_dir(self) -> Path:
        # Podman wants its run root under 50 characters, and a socket path must stay short.
        digest = hashlib.sha256(str(self.storage).encode()).hexdigest()[:10]
        return Path(tempfile.gettempdir()) / f"pagestream-podman-{digest}"

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker-api.sock"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(
            "docker-api",
            self.node.home / "docker-api.pid",
            self.node.paths.logs / "docker-api.log",
            tied=self.node.paths.tied,
        )

    def served(self) -> bool:
        """Whether a service (this node's or another's) answers on the socket."""
        with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as probe:
            try:
                probe.connect(str(self.socket))
            except OSError:
                return False
        return True

    def start(self) -> str:
        podman = shutil.which("podman")
        if not podman:
            raise StackError("skaffold on the node needs podman", hint="apt-get install podman")
        if not self.process.running():
            if self.served():
                raise StackError(
                    f"another node's skaffold is using podman's API over {self.storage}",
                    hint="let that skaffold finish, or take that node down, then run this again",
                )
            self.run_dir.mkdir(mode=0o700, exist_ok=True)
            self.socket.unlink(missing_ok=True)
            self.process.start(
                [
                    # Podman bind-mounts its overlay folder at start: keep that mount private.
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    podman,
                    f"--root={self.storage}",
                    f"--runroot={self.run_dir / 'run'}",
                    "--storage-driver=overlay",
                    "system",
                    "service",
                    "--time=0",
                    f"unix://{self.socket}",
                ],
                cwd=self.node.home,
            )
            wait_until(
                self.socket.exists,
                timeout=30,
                what="podman's API service",
                alive=self.process.running,
                log_path=self.process.log_file,
            )
        return f"unix://{self.socket}"

    def stop(self) -> None:
        """Stop this node's service; remove the run folder unless another node's is serving."""
        self.process.stop(timeout=10)
        if not self.served():
            shutil.rmtree(self.run_dir, ignore_errors=True)


def skaffold(
    node: LocalNode, args: Sequence[str], *, checkout: Path, cli: str
) -> subprocess.CompletedProcess[str]:
    """Run the pinned skaffold in ``checkout`` against the node with the node profile.
    ``cli`` is how skaffold's build and hook commands call ``pagestream``."""
    binary = go_binaries(node.paths.cache, SKAFFOLD_TOOLS) / "skaffold"
    tools = node.home / "skaffold-path"
    tools.mkdir(parents=True, exist_ok=True)
    for name, target in (
        ("kubectl", go_binaries(node.paths.cache, K8S_TOOLS) / "kubectl"),
        ("helm", Helm(node.paths).ensure_installed()),
    ):
        link = tools / name
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    env = {
        **os.environ,
        "PATH": f"{tools}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "KUBECONFIG": str(node.kubeconfig),
        "DOCKER_HOST": DockerApi(node).start(),
        "SKAFFOLD_UPDATE_CHECK": "false",
        "SKAFFOLD_INTERACTIVE": "false",
        "PAGESTREAM_CLI": cli,
        # The build command loads into this node, whatever state folder the checkout has.
        "PAGESTREAM_STATE_DIR": str(node.paths.state),
        "PAGESTREAM_CACHE_DIR": str(node.paths.cache),
    }
    return subprocess.run(
        [
            str(binary),
            *args,
            f"--profile={PROFILE}",
            "--default-repo=localhost",
            f"--kubeconfig={node.kubeconfig}",
            f"--cache-file={node.home / 'skaffold-cache'}",
            "--detect-minikube=false",
        ],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
