"""Fuzzing (Hypothesis) of every parser a peer can reach: whatever arrives, each returns a value
or raises its own error type, and what it puts in a log line stays one bounded line.

Parsers: the response port's envelope decoder (``protocol.open_message``), the launcher's
comm-port request parser (``parse_comm_request``), the server's comm-reply parser
(``KernelChannel._parse_reply``), the settings parsers, and ``logsafe.printable``.  The case
count is printed at the end of the run (``fuzz: N cases``).
"""

from __future__ import annotations

import base64
import importlib.util
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gp_provisioners_core import protocol
from gp_provisioners_core.argv import is_valid_kernel_id
from gp_provisioners_core.channel import KernelChannel, KernelChannelError
from gp_provisioners_core.config import env_float, env_int, parse_port_range
from gp_provisioners_core.launchers import python_launcher
from gp_provisioners_core.logsafe import printable
from gp_provisioners_core.protocol import ProtocolError, ServerKeyPair, open_message
from gp_provisioners_core.testing.fuzz import count_case

KERNEL_ID = "0f0e0d0c-aaaa-bbbb-cccc-000000000009"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def key_pair() -> ServerKeyPair:
    return ServerKeyPair.generate(2048)


@pytest.fixture(scope="module")
def launcher() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gp_fuzz_launcher", python_launcher())
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def opens_or_protocol_error(data: bytes, key_pair: ServerKeyPair, legacy: bool) -> None:
    try:
        open_message(data, key_pair, allow_legacy=legacy)
    except ProtocolError as err:
        assert err.reason in {"malformed", "unsupported-version", "undecryptable", "legacy-refused"}
        assert "\n" not in err.detail
        assert len(err.detail) < 400
        assert err.kernel_id is None or is_valid_kernel_id(err.kernel_id)


@given(data=st.binary(max_size=2048), legacy=st.booleans())
def test_envelope_decoder_raw_bytes(key_pair: ServerKeyPair, data: bytes, legacy: bool) -> None:
    count_case("envelope-bytes")
    opens_or_protocol_error(data, key_pair, legacy)


envelope_fields = st.fixed_dictionaries(
    {},
    optional={
        "version": st.sampled_from([1, 2, 2.0, True, "2", None, [2], 3]),
        "kernel_id": st.one_of(st.text(max_size=300), json_values, st.just(KERNEL_ID)),
        "key": st.one_of(
            st.text(max_size=80),
            json_values,
            st.binary(max_size=400).map(lambda b: base64.b64encode(b).decode()),
        ),
        "nonce": st.one_of(
            st.text(max_size=30), st.binary(max_size=16).map(lambda b: base64.b64encode(b).decode())
        ),
        "conn_info": st.one_of(st.text(max_size=80), json_values),
    },
)


@given(envelope=envelope_fields, legacy=st.booleans())
def test_envelope_decoder_structured_envelopes(
    key_pair: ServerKeyPair, envelope: dict[str, object], legacy: bool
) -> None:
    count_case("envelope-json")
    data = base64.b64encode(json.dumps(envelope).encode())
    opens_or_protocol_error(data, key_pair, legacy)


@given(depth=st.integers(min_value=1, max_value=60_000), opener=st.sampled_from(["[", '{"a":']))
def test_envelope_decoder_deep_nesting(key_pair: ServerKeyPair, depth: int, opener: str) -> None:
    count_case("envelope-nested")
    opens_or_protocol_error(base64.b64encode((opener * depth).encode()), key_pair, True)
    opens_or_protocol_error((opener * depth).encode(), key_pair, False)


conn_infos = st.dictionaries(
    st.sampled_from(
        [
            *("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port", "ip", "key"),
            *("pid", "pgid", "kernel_pid", "comm_port", "kernel_id", "curve_publickey", "x"),
        ]
    ),
    st.one_of(json_values, st.integers(min_value=-5, max_value=70_000), st.text(max_size=30)),
    max_size=14,
)


@given(conn_info=st.one_of(conn_infos, json_values))
def test_connection_info_of_any_shape(conn_info: object) -> None:
    # The checks a sealed body's connection info goes through once decrypted (the RSA and
    # AES round trip around them is covered by the vectors; it is too slow to fuzz here).
    count_case("conn-info")
    try:
        info = protocol._validated_conn_info(conn_info, KERNEL_ID)
    except ProtocolError as err:
        assert err.reason == "malformed"
        assert "\n" not in err.detail
        return
    # What got through is typed.
    for name in ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port"):
        assert type(info[name]) is int
        assert 0 < info[name] < 65536
    for name in ("pid", "pgid", "kernel_pid"):
        assert info.get(name) is None or (type(info[name]) is int and info[name] > 0)


comm_messages = st.one_of(
    st.binary(max_size=1024),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {},
        optional={
            "version": json_values,
            "kernel_id": st.sampled_from([KERNEL_ID, "other"]),
            "request": json_values,
            "ts": st.one_of(st.integers(), json_values),
            "nonce": json_values,
            "signature": st.one_of(st.text(max_size=70), json_values),
        },
    ).map(lambda v: json.dumps(v).encode()),
    st.integers(min_value=1, max_value=50_000).map(lambda n: b"[" * n),
)


@given(raw=comm_messages, version=st.sampled_from([1, 2]))
def test_comm_request_parser(launcher: ModuleType, raw: bytes, version: int) -> None:
    count_case("comm-request")
    verifier = launcher.CommRequestVerifier("k" * 64, KERNEL_ID)
    try:
        request = launcher.parse_comm_request(raw, verifier, version)
    except launcher.CommRequestError as err:
        assert len(err.reason) < 60  # a short code, never the request echoed back
        return
    assert version == 1  # nothing unsigned passes v2
    assert request in ({"shutdown": 1},) or (set(request) == {"signum"})


@given(raw=st.one_of(st.binary(max_size=512), json_values.map(lambda v: json.dumps(v).encode())))
def test_comm_reply_parser(raw: bytes) -> None:
    count_case("comm-reply")
    channel = KernelChannel(KERNEL_ID, "127.0.0.1", 1, "key")
    try:
        reply = channel._parse_reply(raw, {"signum": 0})
    except KernelChannelError as err:
        assert "\n" not in str(err)
        assert len(str(err)) < 500
        return
    assert reply["ok"] is True
    assert isinstance(reply.get("alive", False), bool)


@given(value=st.one_of(st.text(), json_values, st.binary().map(repr)))
def test_printable_is_one_bounded_ascii_line(value: object) -> None:
    count_case("printable")
    shown = printable(value)
    assert shown.isascii()
    assert all(c.isprintable() for c in shown)
    assert len(shown) <= 10 * 80 + 40  # at worst \U0001xxxx for each of 80 characters


@given(raw=st.text(max_size=40).filter(lambda t: "\x00" not in t))  # no NUL in an environment
def test_settings_parsers_name_the_variable(
    monkeypatch_module: pytest.MonkeyPatch, raw: str
) -> None:
    count_case("settings")
    monkeypatch_module.setenv("GP_FUZZ_VALUE", raw)
    for parse in (env_int, env_float):
        try:
            value: Any = parse("GP_FUZZ_VALUE", 1)
        except ValueError as err:
            assert "GP_FUZZ_VALUE" in str(err)
        else:
            assert value == value  # not nan
            assert abs(value) < float("inf")
    try:
        lower, upper = parse_port_range(raw)
    except ValueError as err:
        assert "port range" in str(err)
    else:
        assert (lower, upper) == (0, 0) or 1024 <= lower < upper <= 65535


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@given(kernel_id=st.text(max_size=200))
def test_kernel_id_check_is_whole_string(kernel_id: str) -> None:
    count_case("kernel-id")
    if is_valid_kernel_id(kernel_id):
        assert kernel_id.isascii()
        assert "\n" not in kernel_id
        assert 0 < len(kernel_id) <= 128
