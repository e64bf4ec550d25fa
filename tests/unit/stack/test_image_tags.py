"""Image tags (pagestream.stack.images.component_tag) are digests of what a build reads: the
same inputs give the same tag, a change reaches only the images that COPY it (the operator and
the simulator are two targets of one Dockerfile, each COPYing its own code by its APP build
argument), and what the Dockerfile.dockerignore drops changes nothing. Pure: no buildah, no
image is built."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pagestream.stack import images
from pagestream.stack.errors import StackError
from pagestream.stack.paths import REPO_ROOT

# What the Dockerfiles and their bases read, copied so that a test can change it.
INPUTS = [
    "images",
    "pyproject.toml",
    "uv.lock",
    "dev/bootstrap.sh",
    "cli/pyproject.toml",
    "libs/common",
    "operator",
    "simulator",
    "spark-apps",
    "tools/maven/spark",
]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for item in INPUTS:
        src, dst = REPO_ROOT / item, root / item
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", ".venv"))
        else:
            shutil.copy2(src, dst)
    return root


def tags(root: Path) -> dict[str, str]:
    return {c: images.component_tag(c, root=root) for c in images.COMPONENTS}


def test_unchanged_inputs_give_the_same_tags(repo: Path) -> None:
    first = tags(repo)
    assert tags(repo) == first
    # Only what the build reads counts, not where the checkout is.
    assert tags(REPO_ROOT) == first
    assert len(set(first.values())) == len(first)
    ref = images.ImageRef(images.image_name("operator"), first["operator"])
    assert ref.reference == f"localhost/pagestream-operator:{first['operator']}"


@pytest.mark.parametrize(
    ("component", "code"),
    [("operator", "operator/src"), ("simulator", "simulator/src"), ("spark", "spark-apps/src")],
)
def test_a_change_under_a_components_code_changes_only_its_tag(
    repo: Path, component: str, code: str
) -> None:
    before = tags(repo)
    source = next((repo / code).rglob("*.py"))
    source.write_text(source.read_text() + "\n# changed\n")
    after = tags(repo)
    assert after[component] != before[component]
    assert {c: t for c, t in after.items() if c != component} == {
        c: t for c, t in before.items() if c != component
    }


def test_each_app_digests_only_its_own_code(repo: Path) -> None:
    """One Dockerfile, `COPY ${APP}/src`: the APP build argument decides what is copied."""
    inputs = {c: images.component_inputs(c, root=repo) for c in ("operator", "simulator")}
    for app, other in (("operator", "simulator"), ("simulator", "operator")):
        assert images.RECIPES[app].dockerfile == images.RECIPES[other].dockerfile
        tops = {p.parts[0] for p in inputs[app] if p.parts[1:2] == ("src",)}
        assert tops == {app}
        assert {p.parts[:2] for p in inputs[app] if p.parts[0] == "libs"} == {("libs", "common")}
        assert not [p for p in inputs[app] if p.parts[0] == other and p.name != "pyproject.toml"]


def test_the_target_is_part_of_the_tag(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = images.component_tag("operator", root=repo)
    recipe = images.RECIPES["operator"]
    monkeypatch.setitem(
        images.RECIPES, "operator", images.ImageRecipe(recipe.dockerfile, "runtime", recipe.args)
    )
    assert images.component_tag("operator", root=repo) != before


def test_a_target_builds_only_the_stages_it_needs() -> None:
    dockerfile = REPO_ROOT / images.RECIPES["operator"].dockerfile
    stages = {
        target: [s.name for s in images.dockerfile_stages(dockerfile, target)]
        for target in ("operator", "simulator")
    }
    assert stages == {
        "operator": ["uv", "build", "runtime", "operator"],
        "simulator": ["uv", "build", "runtime", "simulator"],
    }
    with pytest.raises(StackError, match="no stage"):
        images.dockerfile_stages(dockerfile, "nonexistent")


def test_a_copy_source_naming_an_arg_without_a_value_is_an_error(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = images.RECIPES["simulator"]
    monkeypatch.setitem(
        images.RECIPES, "simulator", images.ImageRecipe(recipe.dockerfile, recipe.target)
    )
    with pytest.raises(StackError, match=r"\$APP has no value"):
        images.component_tag("simulator", root=repo)


def test_a_change_to_shared_inputs_changes_every_image_that_copies_them(repo: Path) -> None:
    before = tags(repo)
    common = next((repo / "libs/common/src").rglob("*.py"))
    common.write_text(common.read_text() + "\n# changed\n")
    after = tags(repo)
    assert all(after[c] != before[c] for c in images.COMPONENTS)


def test_files_the_dockerignore_drops_or_no_copy_takes_change_nothing(repo: Path) -> None:
    before = tags(repo)
    for folder in ("operator/src/pagestream_operator", "libs/common/src/pagestream_common"):
        cache = repo / folder / "__pycache__"
        cache.mkdir(exist_ok=True)
        (cache / "render.cpython-311.pyc").write_bytes(b"\x00compiled")
    (repo / "operator/NOTES.md").write_text("not in any image\n")
    (repo / "spark-apps/tests").mkdir(exist_ok=True)
    (repo / "spark-apps/tests/test_new.py").write_text("def test(): pass\n")
    assert tags(repo) == before


def test_a_changed_base_changes_the_images_built_on_it(repo: Path) -> None:
    before = tags(repo)
    python_base = repo / "images/base/python/Dockerfile"
    python_base.write_text(python_base.read_text() + "LABEL changed=1\n")
    after = tags(repo)
    assert after["operator"] != before["operator"]
    assert after["simulator"] != before["simulator"]
    assert after["spark"] == before["spark"]  # built on the Spark and Maven bases
    debian = repo / "images/base/debian/Dockerfile"
    debian.write_text(debian.read_text() + "LABEL changed=1\n")
    assert all(tags(repo)[c] != after[c] for c in images.COMPONENTS)


def test_the_local_bases_are_selected_by_build_args_only(repo: Path) -> None:
    args = images.component_build_args("spark", root=repo)
    assert set(args) == {"SPARK_IMAGE", "MAVEN_IMAGE", "UV_IMAGE", "UV_PYTHON_PREFERENCE"}
    assert all(v.startswith("localhost/pagestream-base-") for k, v in args.items() if "IMAGE" in k)
    for app in ("operator", "simulator"):
        args = images.component_build_args(app, root=repo)
        # APP is the recipe's own (it picks the app, with or without the local bases).
        assert set(args) == {"PYTHON_IMAGE", "UV_IMAGE", "APP"} and args["APP"] == app
        assert all(
            v.startswith("localhost/pagestream-base-") for k, v in args.items() if k != "APP"
        )


@pytest.mark.parametrize(
    ("component", "path", "expected"),
    [
        ("spark", "README.md", True),
        ("spark", "pyproject.toml", False),
        ("spark", "operator/src/pagestream_operator/render.py", False),
        ("spark", "operator/src/pagestream_operator/__pycache__/render.cpython-311.pyc", True),
        ("spark", "operator/tests/test_x.py", True),
        ("spark", "spark-apps/main.py", False),
        ("spark", "tools/maven/spark/pom.xml", False),
        ("spark", "tools/maven/kafka/pom.xml", True),
        ("operator", "README.md", True),
        ("operator", "operator/src/pagestream_operator/render.py", False),
        ("operator", "simulator/src/pagestream_simulator/__init__.py", False),
        ("operator", "libs/common/src/pagestream_common/__pycache__/x.cpython-311.pyc", True),
        ("operator", "spark-apps/pyproject.toml", False),
        ("operator", "spark-apps/main.py", True),
        ("operator", "spark-apps/src/pagestream_spark/job.py", True),
        ("operator", "tools/maven/spark/pom.xml", True),
    ],
)
def test_dockerignore_follows_docker_rules(component: str, path: str, expected: bool) -> None:
    dockerfile = REPO_ROOT / images.RECIPES[component].dockerfile
    ignore = images.DockerIgnore.read(images.ignore_file(dockerfile))
    assert ignore.ignored(path) is expected


def test_dockerfile_instructions_parse_as_docker_does(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "# syntax=docker/dockerfile:1.7\n"
        "# a comment ending in a backslash continues nothing: \\\n"
        "ARG A=1\n"
        "\n"
        "FROM ${A} AS one\n"
        "RUN a \\\n"
        "    # a comment within a continuation is dropped\n"
        "\n"
        "    b\n"
        "copy x y\n"
    )
    assert images.dockerfile_instructions(dockerfile) == [
        ("ARG", "A=1"),
        ("FROM", "${A} AS one"),
        ("RUN", "a  b"),
        ("COPY", "x y"),
    ]


def test_stale_archives_are_the_named_images_other_tags_only() -> None:
    names = [
        "pagestream-spark_41883a4abb732dd2.tar",  # current
        "pagestream-spark_25efc295eaf3b50cbac532fe3feb4df9c6cc9cf4dbe9501ac9bd368f586e2c23.tar",
        "pagestream-spark_0123456789abcdef.tar",  # an earlier install's tag
        "pagestream-postgresql_15-3631b434ed9785fc.tar",  # a platform image: not named
        ".pagestream-spark_0123456789abcdef.tar.4242.tmp",  # an archive being written
        "pagestream-spark.tar",  # no tag
        "pagestream-spark_0123456789abcdef.txt",
    ]
    keep = {"pagestream-spark": {"41883a4abb732dd2"}, "pagestream-operator": {"3b350a00"}}
    assert images.stale_archives(names, keep) == [
        "pagestream-spark_0123456789abcdef.tar",
        "pagestream-spark_25efc295eaf3b50cbac532fe3feb4df9c6cc9cf4dbe9501ac9bd368f586e2c23.tar",
    ]
    assert images.stale_archives(names, {}) == []
