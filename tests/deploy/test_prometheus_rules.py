"""Prometheus config and alert rules: promtool checks, rule unit tests, metric names from the catalogue."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.deploy.catalogue import DEPLOY, series_names
from tests.support.prometheus import INSTALL_HINT, metric_names, promtool_binary

PROM = DEPLOY / "compose" / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = promtool_binary()
    if binary is None:
        pytest.skip(INSTALL_HINT)
    return subprocess.run([binary, *args], cwd=PROM, capture_output=True, text=True, timeout=60)


def test_promtool_check_config() -> None:
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", "rules/hangar.rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests() -> None:
    result = _promtool("test", "rules", "tests/hangar.rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_read_only_exported_metrics_and_every_alert_is_unit_tested() -> None:
    rules = yaml.safe_load((PROM / "rules" / "hangar.rules.yml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    for rule in alerts:
        names = metric_names(rule["expr"])
        assert names and names <= series_names(), (rule["alert"], names - series_names())
    tests = yaml.safe_load((PROM / "tests" / "hangar.rules.test.yml").read_text())
    tested = {t["alertname"] for case in tests["tests"] for t in case["alert_rule_test"]}
    assert tested == {r["alert"] for r in alerts}


def test_scrape_config_targets_the_compose_hangar_metrics_port() -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "hangar")
    assert job["static_configs"][0]["targets"] == ["hangar:8002"]
