"""The fuzz suite's Hypothesis profile and case count (``fuzz: N cases`` at the end)."""

from gp_provisioners_core.testing.fuzz import load_profile, pytest_terminal_summary

__all__ = ["pytest_terminal_summary"]

load_profile()
