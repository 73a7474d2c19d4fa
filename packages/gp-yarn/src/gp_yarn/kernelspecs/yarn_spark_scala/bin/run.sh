#!/usr/bin/env bash
# Submits one Scala (Apache Toree) kernel to YARN with spark-submit in cluster mode: the Toree
# launcher (lib/gp-toree-launcher.jar, class gp.launcher.ToreeLauncher) is the driver's main
# class in the YARN application master, with the Toree assembly on its class path, so the
# launcher, Toree and the Spark driver are one JVM there (docs/operators/scala.md).
#
# Installed by `jupyter yarn-spec install --language Scala` (gp-yarn) and run by the YARN
# provisioner on the server with the kernelspec's argv ("$@": the launcher's flags with their
# placeholders filled).  Nothing is substituted into this file.
#
# Set by the YARN provisioner: KERNEL_ID, KERNEL_USERNAME, GP_LAUNCH_SECRET (reaches the
# application master through a private (0600) properties file, never a command line),
# GP_IMPERSONATION_ENABLED, GP_YARN_APP_TAG.  By the kernelspec's env: SPARK_HOME, SPARK_OPTS
# (more spark-submit options, split on whitespace), TOREE_OPTS or __TOREE_OPTS__ (Toree's).
# Optional: GP_TOREE_JAR (default lib/toree-assembly-*.jar), SPARK_CONF_DIR, TMPDIR,
# GP_TOREE_JAVA_OPTIONS (the driver's spark.driver.defaultJavaOptions; default
# -XX:TieredStopAtLevel=1, as run_toree.sh and for the same reasons; empty: none).
set -euo pipefail

: "${KERNEL_ID:?KERNEL_ID is not set: run.sh is started by the YARN provisioner}"
: "${SPARK_HOME:?SPARK_HOME is not set: install the kernelspec with --spark-home}"

spec_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
toree_jar="${GP_TOREE_JAR:-}"
if [[ -z "${toree_jar}" ]]; then
  for candidate in "${spec_dir}"/lib/toree-assembly-*.jar; do toree_jar="${candidate}"; done
fi
if [[ ! -f "${toree_jar}" ]]; then
  echo "run.sh: no Apache Toree assembly in ${spec_dir}/lib and GP_TOREE_JAR is not set: pip install apache-toree and reinstall the kernelspec" >&2
  exit 1
fi
launcher_jar="${spec_dir}/lib/gp-toree-launcher.jar"

read -r -a extra_opts <<< "${SPARK_OPTS:-}"
read -r -a toree_opts <<< "${TOREE_OPTS:-${__TOREE_OPTS__:-}}"
impersonation=()
if [[ "${GP_IMPERSONATION_ENABLED:-false}" == "true" ]]; then
  impersonation=(--proxy-user "${KERNEL_USERNAME:?KERNEL_USERNAME is needed for impersonation}")
fi
java_opts=()
if [[ -n "${GP_TOREE_JAVA_OPTIONS--XX:TieredStopAtLevel=1}" ]]; then
  java_opts=(--conf "spark.driver.defaultJavaOptions=${GP_TOREE_JAVA_OPTIONS--XX:TieredStopAtLevel=1}")
fi
tags=()
if [[ -n "${GP_YARN_APP_TAG:-}" ]]; then
  tags=(--conf "spark.yarn.tags=${GP_YARN_APP_TAG}")
fi

properties="$(mktemp "${TMPDIR:-/tmp}/gp-yarn-XXXXXXXX")"
trap 'rm -f "${properties}"' EXIT
{
  defaults="${SPARK_CONF_DIR:-${SPARK_HOME}/conf}/spark-defaults.conf"
  if [[ -f "${defaults}" ]]; then
    cat "${defaults}"
    echo
  fi
  echo "spark.yarn.appMasterEnv.GP_LAUNCH_SECRET=${GP_LAUNCH_SECRET:-}"
} > "${properties}"

"${SPARK_HOME}/bin/spark-submit" \
  --master yarn \
  --deploy-mode cluster \
  --name "${KERNEL_ID}" \
  --properties-file "${properties}" \
  --conf spark.yarn.submit.waitAppCompletion=false \
  --conf spark.yarn.maxAppAttempts=1 \
  --conf "spark.yarn.appMasterEnv.KERNEL_ID=${KERNEL_ID}" \
  --conf "spark.yarn.appMasterEnv.KERNEL_USERNAME=${KERNEL_USERNAME:-}" \
  ${tags[@]+"${tags[@]}"} \
  ${impersonation[@]+"${impersonation[@]}"} \
  ${java_opts[@]+"${java_opts[@]}"} \
  ${extra_opts[@]+"${extra_opts[@]}"} \
  --jars "${toree_jar}" \
  --class gp.launcher.ToreeLauncher \
  "${launcher_jar}" \
  ${toree_opts[@]+"${toree_opts[@]}"} \
  "$@"
