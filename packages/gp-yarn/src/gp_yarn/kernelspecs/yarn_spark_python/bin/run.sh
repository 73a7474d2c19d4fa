#!/usr/bin/env bash
# Submits one kernel to YARN with spark-submit in cluster mode: the kernel's launcher
# (scripts/launch_ipykernel.py) runs as the Python driver in the YARN application master.
#
# Installed by `jupyter yarn-spec install` (gp-yarn) and run by the YARN provisioner on the
# server, as a local process, with the kernelspec's argv: "$@" holds the launcher's flags with
# their placeholders already filled.  Nothing is substituted into this file: it reads only the
# environment variables below.
#
# Set by the YARN provisioner at each launch:
#   KERNEL_ID                 the kernel id; the YARN application name
#   KERNEL_USERNAME           the user the kernel runs for (--proxy-user with impersonation)
#   GP_LAUNCH_SECRET          the launch's one-time secret; reaches the application master
#                             through a private (0600) properties file, never a command line
#   GP_TRANSPORT_ENCRYPTION   none | auto | required
#   GP_IMPERSONATION_ENABLED  true | false
#   GP_YARN_APP_TAG           a YARN application tag that identifies this launch
#   GP_YARN_QUEUE             the kernel's queue (KERNEL_YARN_QUEUE, checked); may be empty
#   GP_SPARK_EXTRA_OPTS       the checked options of KERNEL_EXTRA_SPARK_OPTS, whitespace-free
#                             tokens split on whitespace (after SPARK_OPTS: they win)
# Set by the kernelspec's env (kernel.json, from the installer's flags):
#   SPARK_HOME                the Spark installation whose bin/spark-submit submits
#   SPARK_OPTS                more spark-submit options, split on whitespace (no quoting)
#   PYSPARK_PYTHON            the Python that runs the launcher in the application master
# Optional: SPARK_CONF_DIR (default $SPARK_HOME/conf), TMPDIR.
set -euo pipefail

: "${KERNEL_ID:?KERNEL_ID is not set: run.sh is started by the YARN provisioner}"
: "${SPARK_HOME:?SPARK_HOME is not set: install the kernelspec with --spark-home}"

spec_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
launcher="${spec_dir}/scripts/launch_ipykernel.py"
python="${PYSPARK_PYTHON:-python3}"

read -r -a extra_opts <<< "${SPARK_OPTS:-}"
read -r -a user_opts <<< "${GP_SPARK_EXTRA_OPTS:-}"
queue=()
if [[ -n "${GP_YARN_QUEUE:-}" ]]; then
  queue=(--queue "${GP_YARN_QUEUE}")
fi
impersonation=()
if [[ "${GP_IMPERSONATION_ENABLED:-false}" == "true" ]]; then
  impersonation=(--proxy-user "${KERNEL_USERNAME:?KERNEL_USERNAME is needed for impersonation}")
fi
# An R kernel's script travels next to the launcher (the launcher runs it for --kernel-language R).
files=()
if [[ -f "${spec_dir}/scripts/launch_IRkernel.R" ]]; then
  files=(--files "${spec_dir}/scripts/launch_IRkernel.R")
fi
tags=()
if [[ -n "${GP_YARN_APP_TAG:-}" ]]; then
  tags=(--conf "spark.yarn.tags=${GP_YARN_APP_TAG}")
fi

# spark-submit reads either spark-defaults.conf or --properties-file: keep the defaults and add
# the secret, in a file only this user can read, removed once spark-submit returns.
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
  --conf "spark.pyspark.python=${python}" \
  --conf "spark.yarn.appMasterEnv.PYSPARK_PYTHON=${python}" \
  --conf "spark.yarn.appMasterEnv.KERNEL_ID=${KERNEL_ID}" \
  --conf "spark.yarn.appMasterEnv.KERNEL_USERNAME=${KERNEL_USERNAME:-}" \
  --conf "spark.yarn.appMasterEnv.GP_TRANSPORT_ENCRYPTION=${GP_TRANSPORT_ENCRYPTION:-none}" \
  ${files[@]+"${files[@]}"} \
  ${tags[@]+"${tags[@]}"} \
  ${impersonation[@]+"${impersonation[@]}"} \
  ${extra_opts[@]+"${extra_opts[@]}"} \
  ${queue[@]+"${queue[@]}"} \
  ${user_opts[@]+"${user_opts[@]}"} \
  "${launcher}" "$@"
