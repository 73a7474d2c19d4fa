"""What the Scala (Apache Toree) suites need beyond the JDK: Spark and the Toree assembly.

Both come from PyPI: ``pyspark`` (Spark's jars and ``bin/spark-submit``; SPARK_HOME is the
``pyspark`` package folder) and ``apache-toree`` (``toree/lib/toree-assembly-*.jar``).  Toree
0.5.0 is built for Spark 3 with Scala 2.12, so pyspark stays on 3.5 (pyspark 4 is Scala 2.13);
Spark 3.5 runs on Java 17.  They are installed once into a venv under the shared cache
(``~/.cache/gateway-provisioners/scala``), which every worktree and the image build reuse.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from backends.system_packages import missing_packages_message

PYSPARK = "pyspark==3.5.7"
TOREE = "apache-toree==0.5.0"
CACHE = (
    Path(os.environ.get("GP_CACHE_DIR", Path.home() / ".cache" / "gateway-provisioners")) / "scala"
)
VENV = CACHE / "venv-pyspark-3.5.7-toree-0.5.0"


@dataclass(frozen=True)
class ScalaRuntime:
    spark_home: Path
    toree_jar: Path


def missing_jdk() -> str:
    """Why Scala kernels cannot run here (no JDK), or an empty string."""
    message = missing_packages_message("scala")
    if message:
        return message
    if not shutil.which("java") or not shutil.which("javac"):
        return "java/javac not on PATH: apt-get install openjdk-17-jdk-headless"
    return ""


def scala_runtime() -> ScalaRuntime:
    """Spark and Toree, installed into the cache venv on first use (a ~330 MB download)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        python = VENV / "bin" / "python"
        marker = VENV / ".complete"
        if not marker.exists():
            shutil.rmtree(VENV, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", PYSPARK, TOREE],
                check=True,
                timeout=1800,
            )
            marker.touch()
    site = subprocess.run(
        [
            str(python),
            "-c",
            "import pyspark, toree, sys; print(pyspark.__path__[0]); print(toree.__path__[0])",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    spark_home, toree_dir = Path(site[0]), Path(site[1])
    jars = sorted((toree_dir / "lib").glob("toree-assembly-*.jar"))
    return ScalaRuntime(spark_home=spark_home, toree_jar=jars[-1])


if __name__ == "__main__":
    runtime = scala_runtime()
    print(f"SPARK_HOME={runtime.spark_home}\nTOREE_JAR={runtime.toree_jar}")
