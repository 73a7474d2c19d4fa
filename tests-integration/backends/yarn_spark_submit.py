#!/usr/bin/env python3
"""A ``spark-submit`` stand-in for the YARN tests: submits through the RM REST API v1.

**Not Spark.**  It accepts the spark-submit options gp-yarn's run.sh uses (``--master yarn
--deploy-mode cluster``, ``--name``, ``--queue``, ``--proxy-user``, ``--conf``,
``--properties-file``, and the rest are accepted and ignored), finds the active
ResourceManager from ``yarn-site.xml`` under ``YARN_CONF_DIR`` / ``HADOOP_CONF_DIR`` (as real
spark-submit does), asks it for a new application id and submits an application of type SPARK
whose application master command is ``<spark.pyspark.python> <primary .py file> <app args>``
(or, for a ``--class`` in a jar, that class's JVM: see ``jvm_master_command``),
with the environment from ``spark.yarn.appMasterEnv.*``.  ``spark.yarn.tags``,
``spark.yarn.maxAppAttempts`` and ``spark.yarn.submit.waitAppCompletion`` behave as in Spark.
The driver, if it makes a SparkSession, runs Spark in local mode (``PYSPARK_SUBMIT_ARGS``).

Standard library only, so any python3 runs it.  Exit codes: 0 submitted (or, when waiting,
the application succeeded), 1 the submission or the application failed, 2 bad options.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

VALUE_OPTIONS = {
    "--master", "--deploy-mode", "--name", "--queue", "--proxy-user", "--conf", "-c",
    "--properties-file", "--class", "--jars", "--py-files", "--files", "--archives",
    "--driver-memory", "--driver-cores", "--executor-memory", "--executor-cores",
    "--num-executors", "--packages", "--repositories", "--keytab", "--principal",
    "--driver-java-options", "--driver-class-path", "--driver-library-path",
}  # fmt: skip


def log(message: str) -> None:
    stamp = time.strftime("%y/%m/%d %H:%M:%S")
    print(f"{stamp} INFO Client: {message}", file=sys.stderr, flush=True)


def fail(message: str, code: int = 1) -> None:
    print(f'Exception in thread "main" org.apache.spark.SparkException: {message}', file=sys.stderr)
    sys.exit(code)


def parse(argv: list[str]) -> tuple[dict[str, list[str]], str, list[str]]:
    options: dict[str, list[str]] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            return options, arg, argv[i + 1 :]
        name, _, inline = arg.partition("=")
        if name in VALUE_OPTIONS:
            if inline:
                value = inline
            else:
                if i + 1 >= len(argv):
                    fail(f"Missing value for {name}", 2)
                i += 1
                value = argv[i]
            options.setdefault("--conf" if name == "-c" else name, []).append(value)
        elif arg in ("--verbose", "-v", "--supervise"):
            options.setdefault(arg, []).append("")
        else:
            fail(f"Unrecognized option: {arg}", 2)
        i += 1
    fail("Missing application resource.", 2)
    raise AssertionError


def read_properties(path: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        for sep_index, char in enumerate(line):
            if char in "=: \t":
                key, value = line[:sep_index], line[sep_index + 1 :].lstrip(" \t=:")
                break
        else:
            key, value = line, ""
        props[key.strip()] = value.strip()
    return props


def rm_addresses() -> list[str]:
    conf = Path(
        os.environ.get("YARN_CONF_DIR") or os.environ.get("HADOOP_CONF_DIR") or "/etc/hadoop/conf"
    )
    site = conf / "yarn-site.xml"
    if not site.is_file():
        fail(f"No yarn-site.xml in {conf}: set HADOOP_CONF_DIR")
    props = {
        (p.findtext("name") or "").strip(): (p.findtext("value") or "").strip()
        for p in ET.parse(site).getroot().iter("property")
    }

    def expand(value: str) -> str:
        for key, replacement in props.items():
            value = value.replace("${" + key + "}", replacement)
        return value

    rm_ids = [
        r.strip() for r in props.get("yarn.resourcemanager.ha.rm-ids", "").split(",") if r.strip()
    ]
    suffixes = [f".{r}" for r in rm_ids] or [""]
    return [
        "http://" + expand(props[f"yarn.resourcemanager.webapp.address{s}"])
        for s in suffixes
        if f"yarn.resourcemanager.webapp.address{s}" in props
    ]


def request(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def active_rm() -> str:
    reasons = []
    for _ in range(3):
        for address in rm_addresses():
            try:
                status, info = request("GET", f"{address}/ws/v1/cluster/info")
            except OSError as err:
                reasons.append(f"{address}: {err}")
                continue
            if status == 200 and info["clusterInfo"]["haState"] == "ACTIVE":
                return address
            reasons.append(f"{address}: haState {info['clusterInfo']['haState']}")
        time.sleep(0.3)
    fail("Failed to connect to any active ResourceManager: " + "; ".join(reasons[-2:]))
    raise AssertionError


def jvm_master_command(
    options: dict[str, list[str]], name: str, primary: str, app_args: list[str]
) -> str:
    """The master command of a JVM application (``--class`` in a jar, e.g. the Toree launcher):
    its driver in one JVM with Spark in local mode, as the application master would run it.
    Needs a real Spark for the JVM: ``GP_STAND_IN_JVM_SPARK_HOME`` (its bin/spark-submit
    starts the JVM with Spark's class path and module options; no Python is involved)."""
    spark_home = os.environ.get("GP_STAND_IN_JVM_SPARK_HOME", "")
    if not spark_home or not Path(spark_home, "bin", "spark-submit").is_file():
        fail("a --class application needs GP_STAND_IN_JVM_SPARK_HOME (a real Spark)", 2)
    main_class = options.get("--class", [""])[-1]
    if not main_class:
        fail("Missing --class for a jar application", 2)
    jars = options.get("--jars", [])
    command = [str(Path(spark_home, "bin", "spark-submit")), "--master", "local[1]"]
    command += ["--name", name, "--conf", "spark.ui.enabled=false"]
    # the driver's JVM options, which the application master applies to the driver's JVM
    for conf in options.get("--conf", []) + options.get("-c", []):
        if conf.startswith(("spark.driver.defaultJavaOptions=", "spark.driver.extraJavaOptions=")):
            command += ["--conf", conf]
    for java_options in options.get("--driver-java-options", []):
        command += ["--driver-java-options", java_options]
    if jars:
        command += ["--jars", ",".join(jars)]
    command += ["--class", main_class, str(Path(primary).resolve()), *app_args]
    return shlex.join(command)


def main(argv: list[str]) -> int:
    options, primary, app_args = parse(argv)

    def one(name: str, fallback: str = "") -> str:
        return options.get(name, [fallback])[-1]

    if one("--master") != "yarn" or one("--deploy-mode") != "cluster":
        fail("this spark-submit stand-in supports only --master yarn --deploy-mode cluster", 2)
    conf: dict[str, str] = {}
    if "--properties-file" in options:
        conf.update(read_properties(one("--properties-file")))
    for item in options.get("--conf", []):
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--conf {item!r} is not key=value", 2)
        conf[key] = value
    name = one("--name", Path(primary).name)
    queue = one("--queue", conf.get("spark.yarn.queue", "default"))
    user = one("--proxy-user") or getpass.getuser()
    python = conf.get("spark.pyspark.python") or conf.get(
        "spark.yarn.appMasterEnv.PYSPARK_PYTHON", "python3"
    )
    prefix = "spark.yarn.appMasterEnv."
    environment = {k[len(prefix) :]: v for k, v in conf.items() if k.startswith(prefix)}
    environment.setdefault("PYSPARK_SUBMIT_ARGS", "--master local[1] pyspark-shell")
    environment["SPARK_YARN_MODE"] = "true"
    if primary.endswith(".jar"):
        command = jvm_master_command(options, name, primary, app_args)
    else:
        command = shlex.join([python, str(Path(primary).resolve()), *app_args])
    tags = [t for t in conf.get("spark.yarn.tags", "").split(",") if t.strip()]

    rm = active_rm()
    status, answer = request("POST", f"{rm}/ws/v1/cluster/apps/new-application")
    if status != 200:
        fail(f"new-application failed with HTTP {status}: {answer}")
    app_id = answer["application-id"]
    submission = {
        "application-id": app_id,
        "application-name": name,
        "application-type": "SPARK",
        "queue": queue,
        "max-app-attempts": int(conf.get("spark.yarn.maxAppAttempts", "2")),
        "application-tags": {"tag": tags},
        "am-container-spec": {
            "commands": {"command": f"{command} 1><LOG_DIR>/stdout 2><LOG_DIR>/stderr"},
            "environment": {"entry": [{"key": k, "value": v} for k, v in environment.items()]},
        },
        "resource": {"memory": 1024, "vCores": 1},
        "unmanaged-AM": False,
    }
    status, answer = request("POST", f"{rm}/ws/v1/cluster/apps?user.name={user}", submission)
    if status != 202:
        fail(f"Submitting {app_id} failed with HTTP {status}: {answer}")
    log(f"Submitted application {app_id}")
    if conf.get("spark.yarn.submit.waitAppCompletion", "true").lower() != "true":
        return 0
    while True:
        status, answer = request("GET", f"{rm}/ws/v1/cluster/apps/{app_id}")
        app = answer["app"]
        if app["state"] in ("FINISHED", "FAILED", "KILLED"):
            log(f"Application report for {app_id} (state: {app['state']})")
            return 0 if app["finalStatus"] == "SUCCEEDED" else 1
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
