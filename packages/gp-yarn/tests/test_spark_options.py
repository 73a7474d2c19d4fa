"""KERNEL_YARN_QUEUE and KERNEL_EXTRA_SPARK_OPTS against the operator's allow-lists."""

from __future__ import annotations

import pytest

from gp_provisioners_core.errors import InvalidLaunchParameterError
from gp_yarn.spark_options import SparkOptionLimits, resolve_spark_options

LIMITS = SparkOptionLimits(
    queue="default",
    allowed_queues=frozenset({"analytics"}),
    allowed_conf=("spark.executor.*",),
    allowed_flags=frozenset({"--num-executors"}),
)


def test_allowed_options_become_whitespace_free_tokens() -> None:
    env = {
        "KERNEL_YARN_QUEUE": "analytics",
        "KERNEL_EXTRA_SPARK_OPTS": " --conf=spark.executor.memory=2g\n--num-executors  3 ",
    }
    options = resolve_spark_options(env, LIMITS, "k")
    assert options.queue == "analytics"
    assert options.arguments == ("--conf", "spark.executor.memory=2g", "--num-executors", "3")
    assert options.launch_env()["GP_SPARK_EXTRA_OPTS"].split() == list(options.arguments)


def test_default_queue_and_no_options() -> None:
    assert resolve_spark_options({}, LIMITS, "k").launch_env() == {
        "GP_YARN_QUEUE": "default",
        "GP_SPARK_EXTRA_OPTS": "",
    }


@pytest.mark.parametrize(
    "opts",
    [
        "--conf spark.driver.extraJavaOptions=-Dx",
        "--conf spark.executor.memory=$(id)\u0007",
        "--num-executors",
        "--num-executors -1",
        "--packages evil:evil:1",
        "positional",
    ],
)
def test_everything_else_is_refused_naming_the_variable(opts: str) -> None:
    with pytest.raises(InvalidLaunchParameterError, match="KERNEL_EXTRA_SPARK_OPTS=") as refused:
        resolve_spark_options({"KERNEL_EXTRA_SPARK_OPTS": opts}, LIMITS, "kernel-9")
    assert "kernel-9" in str(refused.value)
