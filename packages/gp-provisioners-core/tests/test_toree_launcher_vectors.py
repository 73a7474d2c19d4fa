"""The Scala (Apache Toree) launcher's protocol code, in Java, against
docs/protocol-vectors/v2-vectors.json and against gp_provisioners_core's server side.

The launcher and a small driver (launchers/scala/test/gp/launcher/VectorCheck.java) are compiled
with the JDK's javac and run once per module; the driver prints what the Java code produced
and the assertions are made here, so the Java and the Python implementations are held to the
same vectors (docs/protocol.md §9)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gp_provisioners_core.launchers import launcher_dir
from gp_provisioners_core.protocol import ServerKeyPair, open_message

VECTORS = Path(__file__).resolve().parents[3] / "docs" / "protocol-vectors" / "v2-vectors.json"


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    javac, java = shutil.which("javac"), shutil.which("java")
    if not javac or not java:
        pytest.skip("no JDK (javac): apt-get install openjdk-17-jdk-headless (scala part)")
    source = launcher_dir("scala")
    classes = tmp_path_factory.mktemp("toree-launcher-classes")
    files = [
        *sorted((source / "src").rglob("*.java")),
        source / "test/gp/launcher/VectorCheck.java",
    ]
    subprocess.run(
        [javac, "--release", "11", "-nowarn", "-XDignore.symbol.file", "-d", str(classes)]
        + [str(f) for f in files],
        check=True,
        capture_output=True,
        timeout=300,
    )
    out = subprocess.run(
        [java, "-cp", str(classes), "gp.launcher.VectorCheck", str(VECTORS)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_sealed_body_and_ciphertext_are_the_vectors(
    produced: dict[str, Any], vectors: dict[str, Any]
) -> None:
    launch = vectors["launch"]
    assert produced["body_json"] == launch["body_json"]
    assert produced["associated_data"] == launch["associated_data"]
    assert produced["ciphertext_b64"] == launch["ciphertext_b64"]


@pytest.mark.parametrize("which", ["fixed_message", "random_message"])
def test_the_server_opens_the_java_launch_message(
    produced: dict[str, Any], vectors: dict[str, Any], which: str
) -> None:
    key_pair = ServerKeyPair.from_pem(vectors["rsa"]["private_key_pem"].encode())
    opened = open_message(produced[which].encode() + b"\n", key_pair, allow_legacy=False)
    assert opened.kernel_id == vectors["launch"]["kernel_id"]
    assert opened.launch_secret == vectors["launch"]["launch_secret"]
    assert opened.conn_info == vectors["launch"]["conn_info"]


def test_random_messages_use_a_fresh_key_and_nonce(produced: dict[str, Any]) -> None:
    fixed = json.loads(base64.b64decode(produced["fixed_message"]))
    fresh = json.loads(base64.b64decode(produced["random_message"]))
    assert fresh["nonce"] != fixed["nonce"]
    assert fresh["conn_info"] != fixed["conn_info"]


def test_comm_requests_sign_and_verify_as_the_vectors(
    produced: dict[str, Any], vectors: dict[str, Any]
) -> None:
    expected = {v["name"]: v for v in vectors["comm"]["requests"]}
    assert [r["name"] for r in produced["requests"]] == list(expected)
    for result in produced["requests"]:
        vector = expected[result["name"]]
        assert result["signing_input"] == vector["signing_input"], result["name"]
        assert result["signature"] == vector["signature"], result["name"]
        # accepted at ts and at ts -/+ the allowed skew; the same request again is refused
        assert result["refusals_at_now_and_skew"] == [None, None, None], result["name"]
        assert result["replay"] == "replayed request"
        # what the launcher acts on: the signal number or the shutdown, nothing else
        inner = vector["request"]
        acted = {"shutdown": 1} if inner.get("shutdown") else {"signum": inner["signum"]}
        assert result["request"] == acted


def test_comm_refusals_are_refused(produced: dict[str, Any], vectors: dict[str, Any]) -> None:
    names = [v["name"] for v in vectors["comm"]["refusals"]]
    assert [r["name"] for r in produced["refusals"]] == names
    for result in produced["refusals"]:
        assert result["refused"], f"{result['name']} was accepted"
    reasons = {r["name"]: r["refused"] for r in produced["refusals"]}
    assert reasons["bad-signature"] == "bad signature"
    assert reasons["stale"] == reasons["from-the-future"] == "stale request"


def test_hostile_lines_are_refused_with_a_fixed_reason(produced: dict[str, Any]) -> None:
    # empty, not JSON, 100,000 nested arrays, a non-object request, non-ASCII garbage
    assert produced["hostile"] == [
        "not JSON",
        "not JSON",
        "not JSON",
        "unsigned or incomplete request",
        "not JSON",
    ]
