"""Every installer invocation in gateway_provisioners 0.5.0's documentation gives the same
kernelspec with ours: folder name, display name, language, provisioner, provisioner config and
launcher options.  0.5.0 runs from PyPI in its own venv; ours runs here.

Differences by design, normalized before comparing (docs/migration.md lists them):
- the launcher: 0.5.0's argv starts its own launcher (on the server for containers); ours starts
  ours (inside the image for containers), so argv is compared by its ``--option value`` pairs:
  every pair 0.5.0 writes is in ours with the same value;
- 0.5.0's default images (``elyra/kernel-*:0.5.0``) are ours
  (``ghcr.io/gateway-provisioners/kernel-*:<core version>``, gp_provisioners_core.images);
- 0.5.0 writes its default ``launch_timeout`` (30) into every spec; ours writes it only when
  given, so the server's setting applies.
Where 0.5.0 cannot install (it crashes for R on ssh and YARN) ours installs with 0.5.0's names;
Dask on YARN is refused by ours with a message naming --dask.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gp050_helpers import Unavailable, gp050_python, gp_install, kernels_in, read_spec

from gp_distributed.cli import main as ssh_spec
from gp_docker.cli import main as docker_spec
from gp_k8s.cli import main as k8s_spec
from gp_provisioners_core.images import DEFAULT_PREFIX, default_image
from gp_provisioners_core.installer import InstallerError
from gp_yarn.cli import main as yarn_spec

OURS: dict[str, Callable[[list[str]], int]] = {
    "ssh": ssh_spec,
    "docker": docker_spec,
    "k8s": k8s_spec,
    "yarn": yarn_spec,
}
OUR_IMAGES = {
    "elyra/kernel-py:0.5.0": default_image("python", DEFAULT_PREFIX),
    "elyra/kernel-spark-py:0.5.0": default_image("spark-python", DEFAULT_PREFIX),
    "elyra/kernel-r:0.5.0": default_image("r", DEFAULT_PREFIX),
    "elyra/kernel-scala:0.5.0": default_image("scala", DEFAULT_PREFIX),
}

# (command, flags) as the 0.5.0 docs write them (README.md, docs/source/**), each once.
DOCUMENTED: list[tuple[str, list[str]]] = [
    ("ssh", []),
    ("ssh", ["--ipykernel-subclass-name", "echo_kernel.kernel.EchoKernel", "--kernel-name",
             "echo", "--display-name", "Echo"]),
    ("ssh", ["--kernel-name", "ssh_python", "--remote-hosts=192.168.2.4",
             "--remote-hosts=192.168.2.5"]),
    ("ssh", ["--language", "Scala", "--spark", "--spark_init_mode", "eager"]),
    ("docker", []),
    ("docker", ["--image-name", "my-numpy-image:dev", "--kernel-name", "my_numpy_kernel_py",
                "--display-name", "My Numpy"]),
    ("docker", ["--image-name", "my-tensor-image:dev", "--kernel-name", "my_tensor_kernel_py",
                "--display-name", "My Tensorflow"]),
    ("docker", ["--image-name", "my-R-image:dev", "--language", "R", "--display-name",
                "My R Kernel"]),
    ("docker", ["--language=R", "--kernel-name=r_docker",
                "--image-name=foo/my_r_kernel_image:v4_0"]),
    ("docker", ["--swarm", "--kernel-name=python_swarm"]),
    ("k8s", []),
    ("k8s", ["--crd", "--spark"]),
    ("k8s", ["--image-name", "acme/data-sci-py:2.0", "--kernel-name", "data_sci_py",
             "--display-name", "Data Science 2.0"]),
    ("k8s", ["--image-name", "my-numpy-image:dev", "--kernel-name", "my_numpy_kernel_py",
             "--display-name", "My Numpy"]),
    ("k8s", ["--image-name", "my-tensor-image:dev", "--kernel-name", "my_tensor_kernel_py",
             "--display-name", "My Tensorflow"]),
    ("k8s", ["--image-name", "my-R-image:dev", "--language", "R", "--display-name",
             "My R Kernel"]),
    ("k8s", ["--language=R", "--kernel-name=r_k8s", "--image-name=foo/my_r_kernel_image:v4_0"]),
    ("k8s", ["--language=Scala", "--spark", "--kernel-name=scala_k8s_spark",
             "--display-name=Scala on Kubernetes with Spark"]),
    # the docs' quotes are unbalanced ('Python SparkOperator"); the intent is this:
    ("k8s", ["--spark", "--crd", "--display-name=Python SparkOperator"]),
    ("yarn", []),
    ("yarn", ["--language=Scala", "--spark-init-mode", "eager"]),
]  # fmt: skip
GP_CRASHES_ON = {
    ("ssh", ("--language", "R", "--spark", "--spark-master", "spark://192.168.2.5:7077",
             "--spark-home=/usr/local/spark")): ("ssh_r_spark", "R SSH (with Spark)"),
    ("yarn", ("--language=R", "--spark-home=/usr/local/spark")): (
        "yarn_spark_r", "Spark R (YARN Cluster)"),
}  # fmt: skip
DASK = ("yarn", ["--kernel-name=dask_python", "--dask",
                 "--yarn-endpoint=http://foo.bar:8088/ws/v1/cluster"])  # fmt: skip
# 0.5.0 ignores the underscore spelling its own docs use ("Unrecognized alias:
# 'spark_init_mode', it will have no effect") and writes lazy; ours applies it.
THEIR_MISTAKES = {
    ("ssh", "--spark_init_mode"): {"--spark-context-initialization-mode": "eager"},
}


@pytest.fixture(scope="module")
def gp050() -> Path:
    try:
        return gp050_python()
    except Unavailable as err:
        pytest.skip(f"gateway_provisioners 0.5.0 cannot be installed from PyPI here: {err}")


@pytest.fixture(autouse=True)
def plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GP_IMAGE_NAME", "GP_EXECUTOR_IMAGE_NAME", "SPARK_HOME", "GP_IMAGE_PREFIX"):
        monkeypatch.delenv(name, raising=False)


def options(argv: list[str]) -> dict[str, str]:
    """The ``--option value`` pairs of a launcher command line."""
    return {
        flag: value
        for flag, value in itertools.pairwise(argv)
        if flag.startswith("--") and not value.startswith("--")
    }


def the_one_spec(prefix: Path) -> Path:
    (folder,) = kernels_in(prefix).iterdir()
    return folder


def summary(folder: Path, *, theirs: bool) -> dict[str, Any]:
    spec = read_spec(folder)
    provisioner = spec["metadata"]["kernel_provisioner"]
    config = dict(provisioner.get("config") or {})
    if theirs:
        if config.get("launch_timeout") == 30:
            del config["launch_timeout"]
        for key in ("image_name", "executor_image_name"):
            if key in config:
                config[key] = OUR_IMAGES.get(config[key], config[key])
    return {
        "kernel name": folder.name,
        "display name": spec["display_name"],
        "language": spec["language"],
        "provisioner": provisioner["provisioner_name"],
        "config": config,
    }


@pytest.mark.parametrize(
    ("command", "flags"), DOCUMENTED, ids=[f"{c} {' '.join(f)}" for c, f in DOCUMENTED]
)
def test_documented_invocation_gives_the_same_spec(
    gp050: Path, tmp_path: Path, command: str, flags: list[str]
) -> None:
    done = gp_install(gp050, command, flags, tmp_path / "theirs")
    assert done.returncode == 0, done.stderr[-800:]
    theirs = the_one_spec(tmp_path / "theirs")
    assert OURS[command](["install", f"--prefix={tmp_path / 'ours'}", *flags]) == 0
    ours = the_one_spec(tmp_path / "ours")

    assert summary(ours, theirs=False) == summary(theirs, theirs=True)
    their_options = options(read_spec(theirs)["argv"])
    for (mistaken_command, flag), corrected in THEIR_MISTAKES.items():
        if command == mistaken_command and flag in flags:
            assert "Unrecognized alias" in done.stderr
            their_options.update(corrected)
    our_options = options(read_spec(ours)["argv"])
    assert {k: our_options.get(k) for k in their_options} == their_options


@pytest.mark.parametrize(("key", "names"), list(GP_CRASHES_ON.items()))
def test_where_0_5_0_crashes_ours_installs_with_its_names(
    gp050: Path, tmp_path: Path, key: tuple[str, tuple[str, ...]], names: tuple[str, str]
) -> None:
    command, flags = key
    crashed = gp_install(gp050, command, list(flags), tmp_path / "theirs")
    assert crashed.returncode != 0
    assert OURS[command](["install", f"--prefix={tmp_path / 'ours'}", *flags]) == 0
    ours = the_one_spec(tmp_path / "ours")
    assert (ours.name, read_spec(ours)["display_name"]) == names
    assert read_spec(ours)["language"] == "R"


def test_dask_is_refused_naming_the_flag(tmp_path: Path) -> None:
    command, flags = DASK
    with pytest.raises(InstallerError, match="--dask: gp-yarn runs Spark kernels only"):
        OURS[command](["install", f"--prefix={tmp_path}", *flags])
