"""pagestream's images, built here without a Docker engine or a registry.

buildah builds the project's own Dockerfiles unchanged, each component's image as
:data:`RECIPES` says (its Dockerfile, ``--target`` and build arguments: the Python apps are
targets of ``images/python-app/Dockerfile``); only their base images differ, chosen by
``--build-arg`` (PYTHON_IMAGE, UV_IMAGE, MAVEN_IMAGE, SPARK_IMAGE). The bases are made here too
(``images/base/<name>/Dockerfile``): a Debian bookworm minbase root filesystem from debootstrap,
and from it a Python, a Maven and a Spark base that install Debian packages from the machine's
own Debian mirror (read from its apt sources), plus a ``FROM scratch`` image holding the host's
uv binary.

Every image's tag is a digest of its inputs (:func:`component_tag`): the Dockerfile and target,
the files the target's stages can COPY from its context, its build arguments and its bases'
tags. A tag already in the storage is never built again. The storage is ``<cache>/containers``
(``buildah --root``); each buildah runs in a private mount namespace whose run root is a tmpfs,
so a build leaves no mount and no run state behind, even when killed. Builds use
``--isolation chroot --network host``: no network namespace, bridge, iptables rule or sysctl is
touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pagestream.stack.errors import StackError
from pagestream.stack.paths import REPO_ROOT, StackPaths

log = logging.getLogger(__name__)

IMAGES_DIR = REPO_ROOT / "images"
BASES_DIR = IMAGES_DIR / "base"
PLATFORM_DIR = IMAGES_DIR / "platform"
REGISTRY = "localhost"


@dataclass(frozen=True)
class ImageRecipe:
    """How a component's image is built from the repository root (the build context): the
    Dockerfile (relative to it), the stage that is the image (``--target``; None for the last)
    and the build arguments that make it this image (the local bases' come on top)."""

    dockerfile: str
    target: str | None = None
    args: Mapping[str, str] = field(default_factory=dict)


# The one table of which Dockerfile, target and build arguments make each component's image;
# skaffold.yaml's artifacts and docs/kubernetes.md's `docker build`s say the same (tests check).
RECIPES: dict[str, ImageRecipe] = {
    "operator": ImageRecipe("images/python-app/Dockerfile", "operator", {"APP": "operator"}),
    "simulator": ImageRecipe("images/python-app/Dockerfile", "simulator", {"APP": "simulator"}),
    "spark": ImageRecipe("images/spark/Dockerfile"),
}
COMPONENTS = tuple(RECIPES)

DEBIAN_SUITE = "bookworm"
# Bump when the rootfs recipe below changes (what debootstrap gets, what the tar leaves out).
DEBIAN_RECIPE = f"debootstrap --variant=minbase {DEBIAN_SUITE}; host apt sources; slim; v3"
# Like Debian's -slim images: no documentation, manual pages or translations, now or later.
_DPKG_SLIM = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
"""
_APT_CONF = """\
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
"""

# The build arguments of the project Dockerfiles that name a base, and the local base each one
# gets. Anything else they take keeps its default.
BASE_ARGS = {
    "PYTHON_IMAGE": "python",
    "UV_IMAGE": "uv",
    "MAVEN_IMAGE": "maven",
    "SPARK_IMAGE": "spark",
}
# The platform images' build arguments that name a local base.
PLATFORM_BASE_ARGS = {"DEBIAN_IMAGE": "debian", "SPARK_IMAGE": "spark"}
# The local Spark base has Debian's Python 3.11 (the official image's python3 may be older).
EXTRA_ARGS: dict[str, dict[str, str]] = {"spark": {"UV_PYTHON_PREFERENCE": "only-system"}}
# Each base's own parent, if it is one of ours.
BASE_PARENTS = {
    "debian": None,
    "uv": None,
    "python": "debian",
    "maven": "debian",
    "spark": "debian",
}

# What proves an image runs: argv after the image's own entrypoint, as the image's user.
CHECKS: dict[str, tuple[tuple[str, ...], ...]] = {
    "operator": (("--help",),),
    "simulator": (("--help",),),
    "spark": (
        ("/opt/spark/bin/spark-submit", "--version"),
        ("/opt/pagestream/venv/bin/python", "-c", "import pagestream_spark, pyspark"),
    ),
}


@dataclass(frozen=True)
class ImageRef:
    name: str
    tag: str

    @property
    def reference(self) -> str:
        return f"{REGISTRY}/{self.name}:{self.tag}"


def stale_archives(file_names: Iterable[str], keep: Mapping[str, Collection[str]]) -> list[str]:
    """The image archives (``<name>_<tag>.tar``, as ``ImageBuilder.archive`` names them) of the
    images named in ``keep`` whose tag is not kept there; archives of other images, and files
    that are not archives, are left alone."""
    stale = []
    for file_name in file_names:
        if file_name.startswith(".") or not file_name.endswith(".tar"):
            continue
        name, underscore, tag = file_name.removesuffix(".tar").partition("_")
        if underscore and tag and name in keep and tag not in keep[name]:
            stale.append(file_name)
    return sorted(stale)


def image_name(component: str) -> str:
    return f"pagestream-{component}"


def base_image_name(base: str) -> str:
    return f"pagestream-base-{base}"


# --- Dockerfiles, contexts and tags (pure: repository files only) ----------------------------


def dockerfile_instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped. As in
    Docker's parser, a comment line is dropped whole (a backslash ending it continues nothing),
    and so are comment and empty lines within a continuation."""
    lines: list[str] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
        else:
            lines.append(pending + line)
            pending = ""
    if pending.strip():
        lines.append(pending.strip())
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


@dataclass(frozen=True)
class Stage:
    """One build stage: its name (``AS`` name, else its index), its FROM image as written, and
    its instructions after the FROM."""

    name: str
    image: str
    steps: tuple[tuple[str, str], ...]

    def needs(self) -> set[str]:
        """The names or indexes of the stages (or images) it builds on or copies from."""
        used = {self.image}
        for word, rest in self.steps:
            if word in {"COPY", "ADD"}:
                used |= set(re.findall(r"--from=(\S+)", rest))
        return used


def dockerfile_stages(dockerfile: Path, target: str | None = None) -> list[Stage]:
    """The stages a build of ``target`` (the last stage if None) runs: it and every stage it
    needs through FROM or COPY --from, in the file's order (as BuildKit and buildah skip the
    others)."""
    stages: list[Stage] = []
    for word, rest in dockerfile_instructions(dockerfile):
        if word == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]  # --platform=...
            named = len(words) >= 3 and words[-2].upper() == "AS"
            stages.append(Stage(words[-1] if named else str(len(stages)), words[0], ()))
        elif stages:
            last = stages[-1]
            stages[-1] = Stage(last.name, last.image, (*last.steps, (word, rest)))
    by_name = {s.name: s for s in stages} | {str(i): s for i, s in enumerate(stages)}
    if not stages:
        raise StackError(f"{dockerfile} has no FROM")
    if target is not None and target not in by_name:
        raise StackError(
            f"{dockerfile} has no stage {target!r}", hint=f"one of: {', '.join(by_name)}"
        )
    wanted: set[str] = set()
    todo = [by_name[target] if target is not None else stages[-1]]
    while todo:
        stage = todo.pop()
        if stage.name not in wanted:
            wanted.add(stage.name)
            todo += [by_name[n] for n in stage.needs() if n in by_name]
    return [s for s in stages if s.name in wanted]


def _declare(
    arg: str, build_args: Mapping[str, str], inherited: Mapping[str, str]
) -> dict[str, str]:
    """What an ``ARG NAME[=default] ...`` sets: the build argument given, else the default,
    else (in a stage) the value of the ARG of that name before the first FROM; else nothing."""
    values = {}
    for name, eq, default in (item.partition("=") for item in arg.split()):
        if name in build_args:
            values[name] = build_args[name]
        elif eq:
            values[name] = default.strip("\"'")
        elif name in inherited:
            values[name] = inherited[name]
    return values


def _global_args(dockerfile: Path, build_args: Mapping[str, str]) -> dict[str, str]:
    """The ARGs declared before the first FROM, with their values for this build."""
    values: dict[str, str] = {}
    for word, rest in dockerfile_instructions(dockerfile):
        if word == "FROM":
            break
        if word == "ARG":
            values |= _declare(rest, build_args, {})
    return values


def _expand(text: str, values: Mapping[str, str], where: str) -> str:
    """``$NAME`` and ``${NAME}`` in ``text`` replaced by their values, as Docker expands them."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            raise StackError(
                f"{where}: ${name} has no value", hint=f"declare ARG {name} and give it a value"
            )
        return values[name]

    return re.sub(r"\$(?:\{(\w+)\}|(\w+))", value, text)


def _context_sources(
    dockerfile: Path, target: str | None = None, build_args: Mapping[str, str] | None = None
) -> list[str]:
    """The sources of every COPY/ADD from the build context (not ``--from`` a stage) in the
    stages a build of ``target`` runs, with the stage's ARGs expanded as ``build_args`` set
    them."""
    build_args = build_args or {}
    global_args = _global_args(dockerfile, build_args)
    sources: list[str] = []
    for stage in dockerfile_stages(dockerfile, target):
        values: dict[str, str] = {}
        for word, rest in stage.steps:
            if word == "ARG":
                values |= _declare(rest, build_args, global_args)
            if word not in {"COPY", "ADD"} or "--from=" in rest:
                continue
            if rest.lstrip().startswith("["):
                parts = json.loads(rest)
            else:
                parts = [p for p in rest.split() if not p.startswith("--")]
            where = f"{dockerfile}, stage {stage.name}: {word} {rest}"
            sources += [_expand(p, values, where) for p in parts[:-1]]
    return sources


def _base_args(dockerfile: Path, target: str | None = None) -> list[str]:
    """The BASE_ARGS the FROM lines of the stages a build of ``target`` runs use."""
    used = set()
    for stage in dockerfile_stages(dockerfile, target):
        used |= set(re.findall(r"\$\{?(\w+)\}?", stage.image))
    return sorted(a for a in used if a in BASE_ARGS)


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """One .dockerignore pattern as Docker (moby patternmatcher) compiles it."""
    out = "^"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1
                out += ".*" if i + 1 >= len(pattern) else "(.*/)?"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        elif ch in ".+()|{}$^":
            out += "\\" + ch
        else:
            out += ch
        i += 1
    return re.compile(out + "$")


@dataclass(frozen=True)
class DockerIgnore:
    """Docker's .dockerignore rule: the last pattern matching a path or a parent wins."""

    patterns: tuple[tuple[bool, re.Pattern[str]], ...]

    @classmethod
    def read(cls, path: Path) -> DockerIgnore:
        patterns = []
        if path.exists():
            for line in path.read_text().splitlines():
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                exclude = not line.startswith("!")
                line = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
                patterns.append((exclude, _ignore_regex(line)))
        return cls(tuple(patterns))

    def ignored(self, relative: str) -> bool:
        parts = relative.split("/")
        parents = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
        verdict = False
        for exclude, regex in self.patterns:
            if regex.match(relative) or any(regex.match(p) for p in parents):
                verdict = exclude
        return verdict


def context_files(
    dockerfile: Path,
    context: Path,
    ignore: DockerIgnore,
    *,
    target: str | None = None,
    build_args: Mapping[str, str] | None = None,
) -> list[Path]:
    """Every file of ``context`` that a COPY/ADD of ``dockerfile`` can take in a build of
    ``target`` with ``build_args``, sorted."""
    files: set[Path] = set()
    for source in _context_sources(dockerfile, target, build_args):
        matches = sorted(context.glob(source)) if any(c in source for c in "*?[") else []
        for path in matches or [context / source]:
            if path.is_dir() and not path.is_symlink():
                files |= {p for p in path.rglob("*") if p.is_file() or p.is_symlink()}
            elif path.exists() or path.is_symlink():
                files.add(path)
    return sorted(p for p in files if not ignore.ignored(p.relative_to(context).as_posix()))


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()[:16]


def _file_parts(files: Sequence[Path], root: Path) -> list[bytes | str]:
    parts: list[bytes | str] = []
    for path in files:
        parts.append(path.relative_to(root).as_posix())
        if path.is_symlink():
            parts.append("symlink:" + os.readlink(path))
        else:
            parts.append("x" if os.access(path, os.X_OK) else "-")
            parts.append(path.read_bytes())
    return parts


@lru_cache(maxsize=8)
def _lock_versions(lock: Path, mtime_ns: int, size: int) -> dict[str, str]:
    data = tomllib.loads(lock.read_text())
    return {e["name"]: str(e["version"]) for e in data.get("package", []) if "version" in e}


def _locked_version(package: str, root: Path = REPO_ROOT) -> str:
    lock = root / "uv.lock"
    stat = lock.stat()
    version = _lock_versions(lock, stat.st_mtime_ns, stat.st_size).get(package)
    if version is None:
        raise StackError(f"{package} is not in {lock}", hint="run `uv lock`")
    return version


def pinned_uv_version(root: Path = REPO_ROOT) -> str:
    """The uv that dev/bootstrap.sh installs; the project Dockerfiles' UV_IMAGE carries it too."""
    m = re.search(r"^UV_VERSION=(\S+)$", (root / "dev/bootstrap.sh").read_text(), re.M)
    if not m:
        raise StackError("dev/bootstrap.sh pins no UV_VERSION")
    return m.group(1).strip("\"'")


def _base_inputs(base: str, root: Path) -> list[str]:
    """What a base is made of beyond its Dockerfile folder: the versions it packs."""
    if base == "debian":
        return [DEBIAN_RECIPE]
    if base == "uv":
        return [f"uv {pinned_uv_version(root)}"]
    if base == "spark":
        return [
            f"pyspark {_locked_version('pyspark', root)}",
            f"py4j {_locked_version('py4j', root)}",
        ]
    return []


def _base_build_args(base: str, root: Path = REPO_ROOT) -> dict[str, str]:
    args = {}
    parent = BASE_PARENTS[base]
    if parent:
        args["DEBIAN_IMAGE"] = base_ref(parent, root).reference
    if base == "spark":
        args["PY4J_VERSION"] = _locked_version("py4j", root)
    return args


def base_tag(base: str, root: Path = REPO_ROOT) -> str:
    """A base's tag: its Dockerfile folder, its build arguments (the parent's reference) and
    the versions it packs."""
    folder = root / "images" / "base" / base
    if not (folder / "Dockerfile").is_file():
        raise StackError(f"no base image {base!r}: {folder}/Dockerfile is missing")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    args = _base_build_args(base, root)
    return _digest(
        f"base {base}",
        *_file_parts(files, folder),
        *(f"{k}={v}" for k, v in sorted(args.items())),
        *_base_inputs(base, root),
    )


def base_ref(base: str, root: Path = REPO_ROOT) -> ImageRef:
    return ImageRef(base_image_name(base), base_tag(base, root))


def _recipe(component: str) -> ImageRecipe:
    if component not in RECIPES:
        raise StackError(
            f"unknown image component {component!r}", hint=f"one of: {', '.join(COMPONENTS)}"
        )
    return RECIPES[component]


def _dockerfile(component: str, root: Path = REPO_ROOT) -> Path:
    return root / _recipe(component).dockerfile


def ignore_file(dockerfile: Path) -> Path:
    """The Dockerfile's own .dockerignore (``<Dockerfile>.dockerignore``, beside it)."""
    return dockerfile.with_name(f"{dockerfile.name}.dockerignore")


def component_build_args(component: str, root: Path = REPO_ROOT) -> dict[str, str]:
    """A component's ``--build-arg``s: its recipe's, and those that select the local bases
    (and what they need)."""
    recipe = _recipe(component)
    dockerfile = _dockerfile(component, root)
    args = dict(recipe.args)
    for arg in _base_args(dockerfile, recipe.target):
        args[arg] = base_ref(BASE_ARGS[arg], root).reference
    args.update(EXTRA_ARGS.get(component, {}))
    return args


def _component_files(component: str, root: Path) -> list[Path]:
    """The context files a build of the component can COPY (honouring the .dockerignore)."""
    dockerfile = _dockerfile(component, root)
    return context_files(
        dockerfile,
        root,
        DockerIgnore.read(ignore_file(dockerfile)),
        target=_recipe(component).target,
        build_args=component_build_args(component, root),
    )


def component_tag(component: str, *, root: Path = REPO_ROOT) -> str:
    """The tag of a component's image: a digest of its Dockerfile and target, of every
    context file the target's stages can COPY (honouring the Dockerfile's .dockerignore, with
    the component's build arguments in the sources), of its build arguments and so of its
    bases' tags. Unchanged inputs give the same tag. Reads only files under ``root`` (the
    repository, the build context)."""
    dockerfile = _dockerfile(component, root)
    target = _recipe(component).target
    ignore = ignore_file(dockerfile)
    args = component_build_args(component, root)
    return _digest(
        f"component {component}",
        dockerfile.read_bytes(),
        *([f"target {target}"] if target is not None else []),
        ignore.read_bytes() if ignore.exists() else b"",
        *_file_parts(_component_files(component, root), root),
        *(f"{k}={v}" for k, v in sorted(args.items())),
    )


def component_inputs(component: str, *, root: Path = REPO_ROOT) -> list[Path]:
    """Every file under ``root`` a component's tag depends on, relative to ``root``: what a
    file watcher (skaffold's custom build dependencies) must watch. The tag is the digest."""
    dockerfile = _dockerfile(component, root)
    files = [dockerfile, ignore_file(dockerfile), *_component_files(component, root)]
    bases: set[str] = set()
    for arg in _base_args(dockerfile, _recipe(component).target):
        base: str | None = BASE_ARGS[arg]
        while base:
            bases.add(base)
            base = BASE_PARENTS[base]
    for base in sorted(bases):
        files += sorted(p for p in (root / "images" / "base" / base).rglob("*") if p.is_file())
    # The versions bases pack come from the lock file and the uv pin.
    files += [root / "uv.lock", root / "dev" / "bootstrap.sh"]
    return sorted({f.resolve().relative_to(root.resolve()) for f in files if f.is_file()})


# --- Host inputs: the Debian mirror, uv ------------------------------------------------------


def debian_mirror(suite: str = DEBIAN_SUITE) -> str:
    """The Debian mirror this machine's apt uses for ``suite`` (deb822 or one-line sources)."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in sources:
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = {
                k.strip().lower(): v.strip()
                for k, _, v in (
                    line.partition(":")
                    for line in stanza.splitlines()
                    if line and not line.startswith((" ", "\t", "#"))
                )
            }
            if (
                "deb" in fields.get("types", "").split()
                and suite in fields.get("suites", "").split()
            ):
                if fields.get("enabled", "yes").lower() != "no" and fields.get("uris"):
                    return fields["uris"].split()[0]
    lists = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for path in lists:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            words = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                return words[1]
    raise StackError(
        f"no Debian {suite} mirror in this machine's apt sources",
        hint=f"add a `deb` source for {suite} to /etc/apt/sources.list(.d), then run again",
    )


def _host_apt_sources(suite: str = DEBIAN_SUITE) -> str:
    """The host's deb822 stanzas for ``suite`` and its -updates/-security, for the rootfs."""
    keep = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text().strip()):
            m = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if (
                m
                and m.group(1).split()
                and all(s == suite or s.startswith(f"{suite}-") for s in m.group(1).split())
            ):
                keep.append("\n".join(ln for ln in stanza.splitlines() if not ln.startswith("#")))
    return "\n\n".join(keep) + "\n" if keep else ""


def _slim(rootfs: Path) -> None:
    """Drop what _DPKG_SLIM keeps out of later installs (files only: dpkg and the JDK's
    alternatives want the folders), and apt's downloads and lists."""
    share = rootfs / "usr/share"
    for folder in ("doc", "man", "info", "locale", "lintian"):
        for path in (share / folder).rglob("*"):
            if path.is_dir() and not path.is_symlink():
                continue
            if folder == "doc" and path.name == "copyright":
                continue
            if folder == "locale" and path.name == "locale.alias":
                continue
            path.unlink()
    for folder in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (rootfs / folder).glob("*"):
            if path.is_file():
                path.unlink()


def uv_binary() -> Path:
    """The real uv executable (not a shim): ``$UV`` under ``uv run``, else the uv package's."""
    candidates = [os.environ.get("UV", "")]
    proc = subprocess.run(
        ["python3", "-c", "import uv; print(uv.find_uv_bin())"],
        capture_output=True,
        text=True,
        check=False,
    )
    candidates.append(proc.stdout.strip())
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            with open(candidate, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    return Path(candidate)
    raise StackError(
        "no uv executable found (neither $UV nor python3's uv package)",
        hint="run through `python3 -m uv run`, or `make bootstrap`",
    )


def uv_cache_dir(uv: Path) -> Path:
    proc = subprocess.run([str(uv), "cache", "dir"], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise StackError(f"`uv cache dir` failed: {proc.stderr.strip()}")
    return Path(proc.stdout.strip())


# --- Building ----------------------------------------------------------------------------------

# A private mount namespace, with a tmpfs as buildah's run root: whatever buildah mounts or
# leaves in its run root ends with the namespace.
_WORKING_CONTAINER = re.compile(r"-working-container(-\d+)?$")
_NAMESPACE_SCRIPT = 'mount -t tmpfs -o mode=0700 pagestream-buildah "$0" && exec "$@"'


class ImageBuilder:
    """Builds, checks and archives images in ``<cache>/containers``."""

    def __init__(self, paths: StackPaths) -> None:
        self.paths = paths
        self.root = paths.cache / "containers"
        self.runroot = self.root / "run"
        self.tmp = self.root / "tmp"
        self.archives = paths.cache / "images"
        self.debian_dir = paths.cache / "debian"
        self._lock_depth = 0

    # -- buildah plumbing

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One pagestream buildah at a time on this storage, across processes (each buildah
        has its own run root, so they must not overlap). Reentrant within one builder."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            self._lock_depth = 1
            try:
                # Whatever an interrupted build left in the temporary folder is nobody's now.
                shutil.rmtree(self.tmp, ignore_errors=True)
                yield
            finally:
                self._lock_depth = 0
                fcntl.flock(f, fcntl.LOCK_UN)

    def _argv(self, args: Sequence[str]) -> list[str]:
        buildah = shutil.which("buildah")
        unshare = shutil.which("unshare")
        if not buildah or not unshare:
            raise StackError(
                "`buildah` and `unshare` are needed to build images",
                hint="install the Debian packages buildah and util-linux",
            )
        self.runroot.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        return [
            unshare,
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            _NAMESPACE_SCRIPT,
            str(self.runroot),
            buildah,
            "--root",
            str(self.root),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            "overlay",
            *args,
        ]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "TMPDIR": str(self.tmp), "BUILDAH_ISOLATION": "chroot"}

    def _buildah(self, args: Sequence[str], *, what: str, log_name: str | None = None) -> str:
        """Run buildah; its output goes to a log file (for builds) or is returned."""
        with self._locked():
            return self._buildah_locked(args, what=what, log_name=log_name)

    def _buildah_locked(self, args: Sequence[str], *, what: str, log_name: str | None) -> str:
        argv = self._argv(args)
        log.info("%s: buildah %s", what, " ".join(args))
        if log_name is None:
            proc = subprocess.run(
                argv, capture_output=True, text=True, env=self._env(), check=False
            )
            if proc.returncode != 0:
                raise StackError(
                    f"{what} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}",
                    hint="see the buildah error above",
                )
            return proc.stdout
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        logfile = self.paths.logs / f"image-{log_name}.log"
        with open(logfile, "ab") as out:
            out.write(f"\n=== {time.strftime('%F %T')} {what}\n".encode())
            out.flush()
            logged = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, env=self._env(), check=False
            )
        if logged.returncode != 0:
            tail = logfile.read_text(errors="replace").splitlines()[-30:]
            raise StackError(
                f"{what} failed (exit {logged.returncode}):\n" + "\n".join(tail),
                log=str(logfile),
                hint="the Debian mirror and the package registries must be reachable; "
                "fix the cause and run again (finished steps are cached)",
            )
        return ""

    def exists(self, ref: ImageRef) -> bool:
        with self._locked():
            argv = self._argv(["inspect", "--type", "image", ref.reference])
            proc = subprocess.run(argv, capture_output=True, env=self._env(), check=False)
        return proc.returncode == 0

    def _build(
        self,
        ref: ImageRef,
        *,
        dockerfile: Path,
        context: Path,
        target: str | None = None,
        ignorefile: Path | None = None,
        build_args: Mapping[str, str] | None = None,
        volumes: Sequence[tuple[Path, str]] = (),
    ) -> None:
        args = [
            "build",
            "--isolation",
            "chroot",
            "--network",
            "host",
            "--pull=never",
            "--layers",
            "--force-rm",  # no working container is left behind by a failed step either
            "-f",
            str(dockerfile),
            "-t",
            ref.reference,
        ]
        if target is not None:
            args += ["--target", target]
        if ignorefile is not None:
            args += ["--ignorefile", str(ignorefile)]
        for key, value in sorted((build_args or {}).items()):
            args += ["--build-arg", f"{key}={value}"]
        for host, inside in volumes:
            if not host.exists():
                host.mkdir(parents=True)
            args += ["--volume", f"{host}:{inside}"]
        args.append(str(context))
        started = time.monotonic()
        with self._locked():
            try:
                self._buildah(args, what=f"building {ref.reference}", log_name=ref.name)
            finally:
                # buildah 1.28 keeps the working container of a stage that is only a FROM (the
                # `uv` stages): under the lock, any such container is a build's leftover.
                left = [c for c in self._containers() if _WORKING_CONTAINER.search(c)]
                if left:
                    self._buildah(["rm", *left], what="removing leftover build containers")
        log.info("built %s in %.1f s", ref.reference, time.monotonic() - started)

    @contextlib.contextmanager
    def _context_dir(self, name: str) -> Iterator[Path]:
        self.tmp.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"context-{name}-", dir=self.tmp))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def image_config(self, ref: ImageRef) -> dict[str, Any]:
        out = self._buildah(
            ["inspect", "--type", "image", ref.reference], what=f"inspecting {ref.reference}"
        )
        # buildah inspect prints one JSON object; OCIv1.config is the image's config object.
        config: dict[str, Any] = json.loads(out)["OCIv1"].get("config", {})
        return config

    def run_in(self, ref: ImageRef, argv: Sequence[str], *, user: str | None = None) -> str:
        """Run ``argv`` (the entrypoint is not prepended) in a throwaway container of ``ref``."""
        with self._locked():
            return self._run_in_locked(ref, argv, user=user)

    def _run_in_locked(self, ref: ImageRef, argv: Sequence[str], *, user: str | None) -> str:
        name = f"pagestream-check-{ref.name}-{os.getpid()}"
        # Under the lock no other check runs: any check container left is a killed run's.
        stale = [c for c in self._containers() if c.startswith("pagestream-check-")]
        if stale:
            self._buildah(["rm", *stale], what="removing stale check containers")
        self._buildah(["from", "--pull=never", "--name", name, ref.reference], what="creating")
        try:
            # A private UTS namespace named localhost, so the name resolves (as a pod's does).
            run = ["run", "--isolation", "chroot", "--network", "host", "--hostname", "localhost"]
            if user:
                run += ["--user", user]
            return self._buildah([*run, name, "--", *argv], what=f"running {' '.join(argv)}")
        finally:
            self._buildah(["rm", name], what="removing the check container")

    def _containers(self) -> list[str]:
        out = self._buildah(["containers", "--format", "{{.ContainerName}}"], what="listing")
        return out.split()

    def check(self, ref: ImageRef, checks: Sequence[Sequence[str]]) -> None:
        """Each check's argv runs after the image's entrypoint, as the image's own user,
        which must not be root."""
        config = self.image_config(ref)
        user = config.get("User") or ""
        if user.split(":")[0] in {"", "0", "root"}:
            raise StackError(f"{ref.reference} runs as root", hint="its Dockerfile needs a USER")
        entrypoint = config.get("Entrypoint") or []
        for argv in checks:
            started = time.monotonic()
            self.run_in(ref, [*entrypoint, *argv], user=user)
            log.info(
                "checked %s: %s as %s (%.1f s)",
                ref.reference,
                " ".join(argv),
                user,
                time.monotonic() - started,
            )

    def remove(self, ref: ImageRef) -> None:
        self._buildah(["rmi", ref.reference], what=f"removing {ref.reference}")

    def image_id(self, ref: ImageRef) -> str:
        """The image's id (its config digest, as the Docker API reports it), hex only."""
        out = self._buildah(
            ["inspect", "--type", "image", "--format", "{{.FromImageID}}", ref.reference],
            what=f"inspecting {ref.reference}",
        )
        return out.strip().removeprefix("sha256:")

    def tag(self, ref: ImageRef, as_ref: ImageRef) -> None:
        """Give the image ``ref`` a second name (skaffold's tag for what was built)."""
        if as_ref != ref:
            self._buildah(
                ["tag", ref.reference, as_ref.reference], what=f"tagging {as_ref.reference}"
            )

    # -- bases

    def debian_rootfs(self) -> Path:
        """The debootstrap minbase rootfs as a tar, cached by recipe."""
        key = _digest(DEBIAN_RECIPE)[:12]
        final = self.debian_dir / f"{DEBIAN_SUITE}-minbase-{key}.tar"
        if final.exists():
            return final
        for tool in ("debootstrap", "tar"):
            if not shutil.which(tool):
                raise StackError(f"`{tool}` is not on PATH", hint=f"apt-get install {tool}")
        mirror = debian_mirror()
        self.debian_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".rootfs-", dir=self.debian_dir))
        rootfs = work / "rootfs"
        logfile = self.paths.logs / "image-debian-rootfs.log"
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        log.info("debootstrap %s (minbase) from %s into %s", DEBIAN_SUITE, mirror, rootfs)
        try:
            with open(logfile, "ab") as out:
                # debootstrap mounts /proc and /sys in the target: keep them in a namespace.
                proc = subprocess.run(
                    [
                        "unshare",
                        "--mount",
                        "--propagation",
                        "private",
                        "--",
                        "debootstrap",
                        "--variant=minbase",
                        DEBIAN_SUITE,
                        str(rootfs),
                        mirror,
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
            if proc.returncode != 0:
                tail = logfile.read_text(errors="replace").splitlines()[-20:]
                raise StackError(
                    f"debootstrap {DEBIAN_SUITE} failed (exit {proc.returncode}):\n"
                    + "\n".join(tail),
                    log=str(logfile),
                    hint=f"the Debian mirror {mirror} must be reachable",
                )
            sources = _host_apt_sources()
            if sources:
                (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
                (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(sources)
            (rootfs / "etc/dpkg/dpkg.cfg.d/pagestream-slim").write_text(_DPKG_SLIM)
            (rootfs / "etc/apt/apt.conf.d/90pagestream").write_text(_APT_CONF)
            _slim(rootfs)
            tmp_tar = work / "rootfs.tar"
            subprocess.run(
                [
                    "tar",
                    "--numeric-owner",
                    "--xattrs",
                    "-C",
                    str(rootfs),
                    "--exclude=./dev/*",
                    "--exclude=./proc/*",
                    "--exclude=./sys/*",
                    "--exclude=./run/*",
                    "--exclude=./tmp/*",
                    "-cf",
                    str(tmp_tar),
                    ".",
                ],
                check=True,
                capture_output=True,
            )
            os.replace(tmp_tar, final)
            for stale in self.debian_dir.glob(f"{DEBIAN_SUITE}-minbase-*.tar"):
                if stale != final:
                    stale.unlink()  # an older recipe's
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.info("debian rootfs ready in %.1f s: %s", time.monotonic() - started, final)
        return final

    def _spark_distribution(self, into: Path) -> None:
        """Lay out the pyspark wheel (a whole Spark distribution) as SPARK_HOME in ``into``."""
        uv = uv_binary()
        version = _locked_version("pyspark")
        target = into / ".wheel"
        base = [
            str(uv),
            "pip",
            "install",
            "--no-deps",
            "--python",
            sys.executable,
            "--target",
            str(target),
            f"pyspark=={version}",
        ]
        for offline in (True, False):  # the host's uv cache first; the index only if needed
            proc = subprocess.run(
                [*base, *(["--offline"] if offline else [])],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode == 0:
                break
        else:
            raise StackError(
                f"uv could not install pyspark=={version}: {proc.stderr.strip()[-1500:]}",
                hint="PyPI must be reachable the first time (later the uv cache serves it)",
            )
        package = target / "pyspark"
        into.mkdir(parents=True, exist_ok=True)
        for part in ("bin", "sbin", "jars", "data", "examples", "licenses"):
            if (package / part).exists():
                os.rename(package / part, into / part)
        (into / "python").mkdir()
        os.rename(package / "python" / "lib", into / "python" / "lib")
        shutil.rmtree(package / "python")
        os.rename(package, into / "python" / "pyspark")
        shutil.rmtree(target)
        (into / "RELEASE").write_text(f"Spark {version} (from the pyspark {version} wheel)\n")
        if not (into / "bin/spark-submit").exists() or not any((into / "jars").glob("*.jar")):
            raise StackError(f"the pyspark {version} wheel holds no Spark distribution")

    def build_base(self, base: str) -> ImageRef:
        ref = base_ref(base)
        parent = BASE_PARENTS[base]
        if parent:
            self.build_base(parent)
        with self._locked():
            if self.exists(ref):
                return ref
            folder = BASES_DIR / base
            dockerfile = folder / "Dockerfile"
            args = _base_build_args(base)
            if base in {"python", "maven"}:
                self._build(
                    ref,
                    dockerfile=dockerfile,
                    context=folder,
                    build_args=args,
                    volumes=self._apt_volumes(),
                )
                return ref
            with self._context_dir(base) as context:
                volumes: list[tuple[Path, str]] = []
                if base == "debian":
                    os.link(self.debian_rootfs(), context / "rootfs.tar")
                elif base == "uv":
                    uv = uv_binary()
                    version = subprocess.run(
                        [str(uv), "--version"], capture_output=True, text=True, check=False
                    ).stdout.split()
                    if version[1:2] != [pinned_uv_version()]:
                        raise StackError(
                            f"the host's uv is {' '.join(version)}, "
                            f"dev/bootstrap.sh pins {pinned_uv_version()}",
                            hint="run `make bootstrap` to install the pinned uv",
                        )
                    shutil.copy2(uv, context / "uv")
                elif base == "spark":
                    shutil.copy2(folder / "entrypoint.sh", context / "entrypoint.sh")
                    self._spark_distribution(context / "spark")
                    volumes = self._apt_volumes()
                self._build(
                    ref, dockerfile=dockerfile, context=context, build_args=args, volumes=volumes
                )
        return ref

    def _build_volumes(self, *, maven: bool) -> list[tuple[Path, str]]:
        """What RUN steps of a component build see of the host, for the build only.

        A home for root (``/root``, which every stage has, so buildah creates no mount point
        that would land in an image) holding the host's uv cache at ``~/.cache/uv``, the host's
        ``~/.m2`` and a uv config telling uv to trust the system's certificates; and, read-only
        over the image's own, the host's CA bundles, so that the package registries are reached
        as the host reaches them (its bundle may hold a proxy's CA).
        """
        home = self.root / "build-home"
        (home / ".config" / "uv").mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)
        (home / ".config" / "uv" / "uv.toml").write_text("system-certs = true\n")
        volumes = [(home, "/root"), (uv_cache_dir(uv_binary()), "/root/.cache/uv")]
        bundle = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
        if bundle.is_file():
            volumes.append((bundle, "/etc/ssl/certs/ca-certificates.crt:ro"))
        if maven:
            volumes.append((Path.home() / ".m2", "/root/.m2"))
            java_cacerts = Path("/etc/ssl/certs/java/cacerts")
            if java_cacerts.is_file():
                volumes.append((java_cacerts, f"{java_cacerts}:ro"))
        return volumes

    def _apt_volumes(self) -> list[tuple[Path, str]]:
        """Downloaded .debs stay outside the images and are fetched once for all bases."""
        return [(self.root / "apt-archives", "/var/cache/apt/archives")]

    # -- the project's images

    def build_component(self, component: str, *, source: Path = REPO_ROOT) -> ImageRef:
        """Build a component's image as its recipe says, on the local bases; then check it runs.
        A no-op when the image with this tag is already in the storage. ``source`` is the
        build context: this checkout, or another one (skaffold passes its own)."""
        ref = ImageRef(image_name(component), component_tag(component, root=source))
        with self._locked():
            if self.exists(ref):
                log.info("image %s is up to date", ref.reference)
                return ref
        recipe = _recipe(component)
        dockerfile = _dockerfile(component, source)
        bases = [BASE_ARGS[a] for a in _base_args(dockerfile, recipe.target)]
        for base in bases:
            self.build_base(base)
        volumes = self._build_volumes(maven="maven" in bases)
        started = time.monotonic()
        with self._locked():
            if self.exists(ref):  # another process built it meanwhile
                return ref
            self._build(
                ref,
                dockerfile=dockerfile,
                context=source,
                target=recipe.target,
                ignorefile=ignore_file(dockerfile),
                build_args=component_build_args(component, source),
                volumes=volumes,
            )
            try:
                self.check(ref, CHECKS[component])
            except StackError:
                self.remove(ref)  # a broken image must not pass for a built one next time
                raise
        log.info("image %s ready in %.1f s", ref.reference, time.monotonic() - started)
        return ref

    def build_scratch(
        self, name: str, files: Mapping[str, Path], entrypoint: Sequence[str]
    ) -> ImageRef:
        """A ``FROM scratch`` image of ``files`` (path in the image → file on the host), e.g. a
        static pause or coredns binary. Its tag is a digest of the files and the entrypoint."""
        items = sorted(files.items())
        for inside, host in items:
            if not inside.startswith("/") or not Path(host).is_file():
                raise StackError(f"{name}: {inside} -> {host}: need an absolute path and a file")
        parts: list[bytes | str] = [f"scratch {name}", json.dumps(list(entrypoint))]
        for inside, host in items:
            parts += [inside, "x" if os.access(host, os.X_OK) else "-", Path(host).read_bytes()]
        ref = ImageRef(name, _digest(*parts))
        with self._locked():
            if self.exists(ref):
                return ref
            with self._context_dir(name) as context:
                lines = ["FROM scratch"]
                for i, (inside, host) in enumerate(items):
                    shutil.copy2(host, context / f"f{i}")
                    lines.append(f"COPY f{i} {inside}")
                lines.append(f"ENTRYPOINT {json.dumps(list(entrypoint))}")
                (context / "Dockerfile").write_text("\n".join(lines) + "\n")
                self._build(ref, dockerfile=context / "Dockerfile", context=context)
        return ref

    def build_platform(
        self,
        name: str,
        inputs: Mapping[str, Path],
        *,
        versions: Mapping[str, str],
        tag_prefix: str = "",
    ) -> ImageRef:
        """An image of a platform operator or server the node runs (``images/platform/<name>``):
        its Dockerfile and files, plus ``inputs`` (name in the build context -> a file, or a
        folder whose name is already a cache key, such as a Maven classpath), on the local
        bases. The tag is a digest of all of it and of ``versions`` (what the image packs),
        after ``tag_prefix`` (CloudNativePG reads PostgreSQL's major version off the tag)."""
        folder = PLATFORM_DIR / name
        dockerfile = folder / "Dockerfile"
        if not dockerfile.is_file():
            raise StackError(f"no platform image {name!r}: {dockerfile} is missing")
        used = {
            arg
            for word, rest in dockerfile_instructions(dockerfile)
            if word == "FROM"
            for arg in re.findall(r"\$\{?(\w+)\}?", rest.split()[0])
        }
        bases = {arg: base for arg, base in PLATFORM_BASE_ARGS.items() if arg in used}
        args = {arg: base_ref(base).reference for arg, base in bases.items()}
        own = sorted(p for p in folder.rglob("*") if p.is_file())
        parts: list[bytes | str] = [f"platform {name}", *_file_parts(own, folder)]
        for key, path in sorted(inputs.items()):
            if path.is_dir():
                parts += [key, "dir", path.name]
            else:
                parts += [key, "x" if os.access(path, os.X_OK) else "-", path.read_bytes()]
        parts += [f"{k}={v}" for k, v in sorted({**args, **versions}.items())]
        ref = ImageRef(f"pagestream-{name}", tag_prefix + _digest(*parts))
        with self._locked():
            if self.exists(ref):
                return ref
        for base in bases.values():
            self.build_base(base)
        with self._locked(), self._context_dir(name) as context:
            if self.exists(ref):
                return ref
            for path in own:
                target = context / path.relative_to(folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            for key, path in inputs.items():
                if path.is_dir():
                    shutil.copytree(path, context / key, copy_function=os.link)
                else:
                    shutil.copy2(path, context / key)
            self._build(
                ref,
                dockerfile=context / "Dockerfile",
                context=context,
                build_args={
                    **args,
                    **{k.upper().replace("-", "_"): v for k, v in versions.items()},
                },
                volumes=self._apt_volumes() if "DEBIAN_IMAGE" in bases else [],
            )
        return ref

    def prune(self) -> list[str]:
        """Remove the components' and bases' images and archives of tags that are no longer
        current (a skaffold build's tag among them); other images (``build_scratch``'s, the
        platform's) and the layer cache are kept. Returns what went."""
        current = {image_name(c): component_tag(c) for c in COMPONENTS}
        current |= {base_image_name(b): base_tag(b) for b in BASE_PARENTS}
        out = self._buildah(["images", "--format", "{{.Name}}:{{.Tag}}"], what="listing")
        stale = []
        for line in out.split():
            repo, _, tag = line.rpartition(":")
            name = repo.removeprefix(f"{REGISTRY}/")
            if name in current and tag != current[name]:
                stale.append(line)
        if stale:
            try:
                self._buildah(["rmi", *stale], what="removing stale images")
            except StackError as err:
                # Housekeeping: an image a container still uses stays until the next prune.
                log.warning("stale images kept: %s", err)
                stale = []
        return stale + [str(p) for p in self.prune_archives({n: {t} for n, t in current.items()})]

    def prune_archives(self, keep: Mapping[str, Collection[str]]) -> list[Path]:
        """Delete the archives of the images named in ``keep`` whose tags it does not keep:
        each is a whole image (up to ~1.2 GB) and a tag that is gone is never imported again."""
        names = [p.name for p in self.archives.iterdir()] if self.archives.is_dir() else []
        removed = [self.archives / n for n in stale_archives(names, keep)]
        for path in removed:
            path.unlink(missing_ok=True)
        if removed:
            log.info("removed %d stale image archives: %s", len(removed), removed)
        return removed

    def archive(self, ref: ImageRef) -> Path:
        """A docker-archive tar of ``ref`` that ``ctr -n k8s.io images import`` loads under the
        name ``ref.reference``; cached by tag."""
        final = self.archives / f"{ref.name}_{ref.tag}.tar"
        if final.exists():
            return final
        self.archives.mkdir(parents=True, exist_ok=True)
        tmp = self.archives / f".{final.name}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        started = time.monotonic()
        try:
            with self._locked():
                self._buildah(
                    ["push", ref.reference, f"docker-archive:{tmp}:{ref.reference}"],
                    what=f"archiving {ref.reference}",
                    log_name=ref.name,
                )
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        log.info("archived %s in %.1f s: %s", ref.reference, time.monotonic() - started, final)
        return final
