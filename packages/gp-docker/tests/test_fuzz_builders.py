"""Fuzzing (Hypothesis) of the container builders' request parsing: any KERNEL_UID/GID and
KERNEL_IMAGE give a 400 or a checked value, never a 500 and never root unless allowed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gp_docker.builders import check_network, kernel_user, select_image
from gp_provisioners_core.errors import InvalidLaunchParameterError
from gp_provisioners_core.testing.fuzz import count_case

KERNEL_ID = "3f1c2a9e-8d7b-4c6a-9e5f-0123456789ab"
ids = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["0", "00", " 0 ", "+1", "1_000", "\u0661", "4294967296", "1000", ""]),
)


@given(uid=st.one_of(st.none(), ids), gid=st.one_of(st.none(), ids), root=st.booleans())
def test_kernel_user(uid: str | None, gid: str | None, root: bool) -> None:
    count_case("container-user")
    env = {k: v for k, v in (("KERNEL_UID", uid), ("KERNEL_GID", gid)) if v is not None}
    try:
        user = kernel_user(env, KERNEL_ID, root)
    except InvalidLaunchParameterError as refused:
        assert refused.status_code == 400
        return
    if user is not None:
        uid_text, gid_text = user.split(":")
        assert uid_text.isdigit()
        assert gid_text.isdigit()
        assert root or (int(uid_text) != 0 and int(gid_text) != 0)


@given(requested=st.text(max_size=60), allowed=st.lists(st.text(max_size=20), max_size=3))
def test_select_image(requested: str, allowed: list[str]) -> None:
    count_case("container-image")
    try:
        image = select_image("kernel:1", requested, [*allowed, "kernel:*"], KERNEL_ID)
    except InvalidLaunchParameterError as refused:
        assert refused.status_code == 400
        return
    assert image == "kernel:1" or image == requested.strip()
    assert "\n" not in image


@given(network=st.text(max_size=40))
def test_check_network(network: str) -> None:
    count_case("container-network")
    try:
        checked = check_network(network)
    except ValueError:
        return
    assert checked == network
    assert network.isascii()
    assert "\n" not in network
