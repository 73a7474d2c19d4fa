"""The shared cpu/memory/GPU settings and request checks: units, bounds and refusals."""

from __future__ import annotations

import pytest
from traitlets import TraitError
from traitlets.config import Config

from gp_provisioners_core.errors import InvalidLaunchParameterError
from gp_provisioners_core.resources import (
    ResourceBounds,
    ResourceSettings,
    cpus_request,
    format_memory,
    gpus_request,
    memory_request,
    parse_memory,
)

KERNEL_ID = "kernel-7"


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("", 0),
        ("0", 0),
        ("1024", 1024),
        ("1k", 1000),
        ("1K", 1000),
        ("1Ki", 1024),
        ("512Mi", 512 * 1024**2),
        ("1.5Gi", 3 * 512 * 1024**2),
        ("2G", 2 * 10**9),
        ("1Ti", 1024**4),
        (" 3M ", 3 * 10**6),
    ],
)
def test_memory_units(text: str, number: int) -> None:
    assert parse_memory(text) == number


@pytest.mark.parametrize("text", ["lots", "1GB", "-1Gi", "1e9", "1.5.5", "Gi", "1 Gi", "9" * 16])
def test_memory_refuses_what_is_no_quantity(text: str) -> None:
    with pytest.raises(ValueError, match="is not a memory quantity"):
        parse_memory(text)


@pytest.mark.parametrize(
    ("number", "text"),
    [(16 * 1024**3, "16Gi"), (1536 * 1024**2, "1536Mi"), (2048, "2Ki"), (1000, "1000"), (0, "0")],
)
def test_memory_is_shown_in_the_largest_unit_that_divides_it(number: int, text: str) -> None:
    assert format_memory(number) == text


@pytest.mark.parametrize(("raw", "cores"), [("0.5", 0.5), ("500m", 0.5), ("4", 4.0), ("0", 0.0)])
def test_cpus_in_cores_or_millicores(raw: str, cores: float) -> None:
    assert cpus_request("KERNEL_CPUS", raw, 4, KERNEL_ID) == cores


@pytest.mark.parametrize("raw", ["4.001", "5", "-1", "nan", "inf", "sNaN", "abc", "m", "1e3"])
def test_cpus_outside_the_bound_are_refused_with_the_setting(raw: str) -> None:
    with pytest.raises(InvalidLaunchParameterError) as refused:
        cpus_request("KERNEL_CPUS_LIMIT", raw, 4, KERNEL_ID)
    message = str(refused.value)
    assert message.startswith(f"KERNEL_CPUS_LIMIT={raw!r} for kernel {KERNEL_ID} is refused")
    assert "from 0 to 4 (max_cpus)" in message
    assert refused.value.status_code == 400
    assert refused.value.kernel_id == KERNEL_ID


def test_zero_cpus_only_where_the_backend_allows_it() -> None:
    with pytest.raises(InvalidLaunchParameterError, match=r"above 0 and at most 2 \(max_cpus\)"):
        cpus_request("KERNEL_CPUS", "0m", 2, KERNEL_ID, allow_zero=False)
    assert cpus_request("KERNEL_CPUS", "1m", 2, KERNEL_ID, allow_zero=False) == 0.001


def test_memory_request_bounds() -> None:
    assert memory_request("KERNEL_MEMORY", "16Gi", 16 * 1024**3, KERNEL_ID) == 16 * 1024**3
    with pytest.raises(InvalidLaunchParameterError) as refused:
        memory_request("KERNEL_MEMORY", "17Gi", 16 * 1024**3, KERNEL_ID)
    assert str(refused.value) == (
        f"KERNEL_MEMORY='17Gi' for kernel {KERNEL_ID} is refused: "
        "it exceeds the maximum of 16Gi (max_memory)"
    )
    with pytest.raises(InvalidLaunchParameterError, match=r"'lots'.*such as 512Mi"):
        memory_request("KERNEL_MEMORY", "lots", 16 * 1024**3, KERNEL_ID)


def test_memory_floor_of_a_backend_is_named() -> None:
    with pytest.raises(InvalidLaunchParameterError) as refused:
        memory_request(
            "KERNEL_MEMORY", "1Mi", 2 * 1024**3, KERNEL_ID, least=6 * 1024**2, least_why="floor"
        )
    assert "below the minimum of 6Mi (floor)" in str(refused.value)
    assert memory_request("KERNEL_MEMORY", "0", 2 * 1024**3, KERNEL_ID) == 0


@pytest.mark.parametrize("raw", ["3", "-1", "1.0", "x", "\u0661", "+1", ""])
def test_gpus_are_a_bounded_whole_number(raw: str) -> None:
    with pytest.raises(InvalidLaunchParameterError, match=r"from 0 to 2 \(max_gpus\)"):
        gpus_request("KERNEL_GPUS", raw, 2, KERNEL_ID)
    assert gpus_request("KERNEL_GPUS", " 02 ", 2, KERNEL_ID) == 2


def test_a_long_value_is_cut_in_the_message() -> None:
    with pytest.raises(InvalidLaunchParameterError) as refused:
        gpus_request("KERNEL_GPUS", "9" * 5000, 1, KERNEL_ID)
    assert len(str(refused.value)) < 400
    assert "..." in str(refused.value)


def test_settings_default_to_the_gp_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "GP_DEFAULT_CPUS": "0.5",
        "GP_MAX_CPUS": "8",
        "GP_DEFAULT_MEMORY": "1Gi",
        "GP_MAX_MEMORY": "32Gi",
        "GP_MAX_GPUS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    assert ResourceSettings().resource_bounds() == ResourceBounds(
        default_cpus=0.5, max_cpus=8, default_memory=1024**3, max_memory=32 * 1024**3, max_gpus=2
    )


def test_settings_without_variables() -> None:
    assert ResourceSettings().resource_bounds() == ResourceBounds()
    assert ResourceBounds().max_memory == 16 * 1024**3


def test_configuration_wins_over_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    class Backend(ResourceSettings):
        pass

    monkeypatch.setenv("GP_MAX_GPUS", "1")
    config = Config({"Backend": {"max_gpus": 4, "max_memory": "1Gi"}})
    bounds = Backend(config=config).resource_bounds()
    assert (bounds.max_gpus, bounds.max_memory) == (4, 1024**3)


@pytest.mark.parametrize("variable", ["GP_MAX_MEMORY", "GP_DEFAULT_MEMORY"])
def test_a_bad_memory_variable_is_named(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "lots")
    with pytest.raises(TraitError) as refused:
        ResourceSettings().resource_bounds()
    assert variable in str(refused.value)
    assert "'lots'" in str(refused.value)


def test_a_bad_memory_setting_is_refused_when_set() -> None:
    with pytest.raises(TraitError, match=r"max_memory \(GP_MAX_MEMORY\)"):
        ResourceSettings(max_memory="16 gigabytes")


@pytest.mark.parametrize(("variable", "value"), [("GP_MAX_CPUS", "many"), ("GP_MAX_GPUS", "1.5")])
def test_a_bad_number_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        ResourceSettings().resource_bounds()
