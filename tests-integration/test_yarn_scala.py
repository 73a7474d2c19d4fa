"""Scala (Apache Toree) kernels on YARN in cluster mode (the RM emulated, as in the other YARN
suites): the conformance suite with Scala snippets and a Spark job, in both Spark context modes.

The application master runs only a JVM: the stand-in spark-submit turns the submission of
``--class gp.launcher.ToreeLauncher`` into the driver's JVM (Spark in local mode), with no
Python in it, so the launcher's protocol is the Java one (docs/operators/scala.md).  One RM for
the module; the Toree runtime comes from the shared cache (backends/scala_runtime.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from backends.yarn_harness import (
    YarnBackendSetup,
    YarnConformanceBackend,
    make_spark_home,
    yarn_backend,
)
from scala_helpers import (
    SCALA_LAUNCH_TIMEOUT,
    install_scala_spec,
    require_scala_runtime,
    scala_opt_in,
    spark_job_in_new_kernel,
)

from gp_provisioners_core.testing.conformance import SCALA, ProvisionerConformance
from gp_provisioners_core.testing.kernels import isolated_jupyter_paths

pytestmark = scala_opt_in

EAGER = "yarn_scala_eager"
LAZY = "yarn_scala_lazy"


@pytest.fixture(scope="module")
def yarn_scala(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YarnBackendSetup]:
    runtime = require_scala_runtime()
    root = tmp_path_factory.mktemp("yarn-scala")
    with yarn_backend(root, ha=False) as setup, isolated_jupyter_paths(setup.jupyter_root):
        submitter = make_spark_home(root / "spark-scala", jvm_spark_home=runtime.spark_home)
        submit_runtime = type(runtime)(spark_home=submitter, toree_jar=runtime.toree_jar)
        for name, mode in ((EAGER, "eager"), (LAZY, "lazy")):
            install_scala_spec(
                "jupyter-yarn-spec", setup.jupyter_root, name, mode, submit_runtime,
                "--yarn-endpoint", setup.endpoints[0],
            )  # fmt: skip
        yield setup


class TestYarnScalaConformance(ProvisionerConformance):
    @pytest.fixture
    def conformance_backend(
        self, yarn_scala: YarnBackendSetup, monkeypatch: pytest.MonkeyPatch
    ) -> YarnConformanceBackend:
        for name, value in yarn_scala.env().items():
            monkeypatch.setenv(name, value)
        backend = YarnConformanceBackend(
            kernel_name=EAGER,
            env=yarn_scala.env(),
            language=SCALA,
            launch_timeout=SCALA_LAUNCH_TIMEOUT,
        )
        backend.setup = yarn_scala
        return backend

    @pytest.mark.asyncio
    async def test_lazy_context_runs_a_spark_job(
        self, yarn_scala: YarnBackendSetup, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name, value in yarn_scala.env().items():
            monkeypatch.setenv(name, value)
        output, _ = await spark_job_in_new_kernel(LAZY, {"KERNEL_USERNAME": "alice"})
        assert output == SCALA.spark_answer
        assert await yarn_scala.wait_all_stopped() == []
