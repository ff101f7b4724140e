"""The LogSettings RPC through tritonclient against a real server with its telemetry on."""

from __future__ import annotations

import logging

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from server.telemetry.logging import LogSettings
from tests.support.telemetry_server import telemetry_server


def test_log_settings_read_change_and_refuse() -> None:
    root_level, before = logging.getLogger().level, LogSettings.installed()
    with telemetry_server(load_models=("add_sub",)) as (srv, _):
        client = grpcclient.InferenceServerClient(srv.url)
        settings = client.get_log_settings(as_json=True)["settings"]
        assert settings["log_verbose_level"] == {"uint32_param": 0}
        assert settings["log_info"] == {"bool_param": True}
        changed = client.update_log_settings({"log_verbose_level": 2, "log_format": "json"}, as_json=True)
        assert changed["settings"]["log_verbose_level"] == {"uint32_param": 2}
        assert changed["settings"]["log_format"] == {"string_param": "json"}
        assert logging.getLogger().level == logging.DEBUG  # the change took effect in the process
        assert LogSettings.installed() is not None
        with pytest.raises(InferenceServerException, match="log_colour"):
            client.update_log_settings({"log_colour": True})
        with pytest.raises(InferenceServerException, match="cannot open log file"):
            client.update_log_settings({"log_file": "/nonexistent-dir/h.log", "log_verbose_level": 0})
        after = client.get_log_settings(as_json=True)["settings"]
        assert after["log_verbose_level"] == {"uint32_param": 2}  # the refused updates changed nothing
    if before is None:  # the helper takes Hangar's handler off the root logger again
        assert LogSettings.installed() is None and logging.getLogger().level == root_level
