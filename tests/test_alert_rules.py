"""The alert rules in docs/alerts pass `promtool check rules` and their unit tests
(`promtool test rules`): the names they use are the metrics ranvier exports."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: .ci/run installs it (apt-get install prometheus)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return found


def test_the_alert_rules_are_valid_and_fire_as_their_tests_say() -> None:
    promtool = _promtool()
    for args in (
        ["check", "rules", "docs/alerts/ranvier.rules.yml"],
        ["test", "rules", "tests/alerts/ranvier.rules.test.yml"],
    ):
        done = subprocess.run(
            [promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_name_only_metrics_ranvier_exports() -> None:
    from ranvier import metrics

    text = (ROOT / "docs/alerts/ranvier.rules.yml").read_text()
    names = {m.name for c in (metrics.CHECKPOINT_FAILURES, metrics.POISONED) for m in c.describe()}
    assert names == {"ranvier_checkpoint_failures", "ranvier_poisoned_traces"}
    exported = {
        "ranvier_checkpoint_failures_total",
        "ranvier_poisoned_traces_total",
        "ranvier_compensations_total",
        "ranvier_store_up",
        "ranvier_traces",
    }
    for name in exported:
        assert name in text
