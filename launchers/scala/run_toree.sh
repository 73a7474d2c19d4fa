#!/usr/bin/env bash
# Start an Apache Toree (Scala) kernel behind the Gateway Provisioners launcher (protocol v2).
#
# The launcher (lib/gp-toree-launcher.jar, main class gp.launcher.ToreeLauncher) runs as
# spark-submit's main class with the Toree assembly on the class path, so Toree, Spark's driver
# and the launcher are one JVM: that also works where only the JVM runs (YARN cluster mode).
#
#   SPARK_HOME           a Spark distribution (or a pyspark installation) - required
#   SPARK_OPTS           spark-submit options (default: __TOREE_SPARK_OPTS__ of the kernelspec)
#   TOREE_OPTS           Toree options (default: __TOREE_OPTS__, e.g. --alternate-sigint USR2)
#   GP_TOREE_JAR         the Toree assembly (default: lib/toree-assembly-*.jar next to bin/)
#   GP_TOREE_LAUNCHER_JAR  the launcher jar (default: lib/gp-toree-launcher.jar)
#   GP_TOREE_JAVA_OPTIONS  the driver JVM's spark.driver.defaultJavaOptions (default:
#                        -XX:TieredStopAtLevel=1; empty: the JVM's defaults)
# Arguments are the launcher's (--kernel-id, --response-address, --public-key, --port-range,
# --spark-context-initialization-mode lazy|eager) and go to it unchanged, never through a shell.
set -euo pipefail
home="$(cd "$(dirname "$0")/.." && pwd)"

if [ -z "${SPARK_HOME:-}" ] || [ ! -x "${SPARK_HOME}/bin/spark-submit" ]; then
    echo "run_toree.sh: SPARK_HOME='${SPARK_HOME:-}' has no bin/spark-submit: set SPARK_HOME to a Spark 3.x (Scala 2.12) distribution" >&2
    exit 1
fi
toree_jar="${GP_TOREE_JAR:-}"
if [ -z "$toree_jar" ]; then
    for candidate in "$home"/lib/toree-assembly-*.jar; do toree_jar="$candidate"; done
fi
if [ ! -f "$toree_jar" ]; then
    echo "run_toree.sh: no Apache Toree assembly in $home/lib (toree-assembly-*.jar) and GP_TOREE_JAR is not set: pip install apache-toree and reinstall the kernelspec" >&2
    exit 1
fi
launcher_jar="${GP_TOREE_LAUNCHER_JAR:-$home/lib/gp-toree-launcher.jar}"
if [ ! -f "$launcher_jar" ]; then
    echo "run_toree.sh: the launcher jar $launcher_jar is missing: reinstall the kernelspec (it needs a JDK to build)" >&2
    exit 1
fi

# Word-split the option strings as gateway_provisioners' run.sh did, but without eval: values
# are options, never shell code.
read -r -a spark_opts <<< "${SPARK_OPTS:-${__TOREE_SPARK_OPTS__:-}}"
read -r -a toree_opts <<< "${TOREE_OPTS:-${__TOREE_OPTS__:-}}"
# The JIT stops at C1 by default: Toree runs its Scala compiler for every cell and for every
# exception it reports (an interrupt's too), code that runs too few times for C2 to pay off and
# whose C2 compilations take the CPU the cell needs.  Measured (docs/operators/scala.md): the
# start to the first cell halves, and an interrupt costs a third of the CPU.  Spark tasks in
# local mode run in this JVM too: for long CPU-bound jobs set GP_TOREE_JAVA_OPTIONS= (empty).
# Put first, so a spark.driver.defaultJavaOptions among SPARK_OPTS wins.
java_opts="${GP_TOREE_JAVA_OPTIONS--XX:TieredStopAtLevel=1}"
if [ -n "$java_opts" ]; then
    spark_opts=(--conf "spark.driver.defaultJavaOptions=${java_opts}" ${spark_opts[@]+"${spark_opts[@]}"})
fi
if [ -n "${SPARK_MASTER:-}" ] && [[ " ${spark_opts[*]:-} " != *" --master "* ]]; then
    spark_opts+=(--master "$SPARK_MASTER")
fi
if [ -n "${KERNEL_ID:-}" ] && [[ " ${spark_opts[*]:-} " != *" --name "* ]]; then
    spark_opts+=(--name "$KERNEL_ID")
fi

exec "${SPARK_HOME}/bin/spark-submit" \
    ${spark_opts[@]+"${spark_opts[@]}"} \
    --jars "$toree_jar" \
    --class gp.launcher.ToreeLauncher \
    "$launcher_jar" \
    ${toree_opts[@]+"${toree_opts[@]}"} \
    "$@"
