"""Config auto-complete through a Python model's own `auto_complete_config`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.backends.python.backend import PythonBackend
from server.errors import ConfigError
from server.repository.model_config import ModelConfig
from tests.support.tensor_models import load_backend, make_request, outputs_of, run_requests
from tests.unit.backends.python.model_files import write_model

SELF_DESCRIBING = """
    import triton_python_backend_utils as pb_utils

    class TritonPythonModel:
        @staticmethod
        def auto_complete_config(auto_complete_model_config):
            auto_complete_model_config.add_input({"name": "A", "data_type": "TYPE_INT32", "dims": [2]})
            auto_complete_model_config.add_output({"name": "B", "data_type": "TYPE_INT32", "dims": [2]})
            auto_complete_model_config.set_max_batch_size(4)
            auto_complete_model_config.set_dynamic_batching()
            return auto_complete_model_config

        def execute(self, requests):
            doubled = [pb_utils.get_input_tensor_by_name(r, "A").as_numpy() * 2 for r in requests]
            return [pb_utils.InferenceResponse([pb_utils.Tensor("B", b)]) for b in doubled]
"""


def test_model_fills_in_its_own_config(tmp_path: Path) -> None:
    model_dir, _ = write_model(tmp_path, "selfdesc", SELF_DESCRIBING)
    bare = ModelConfig.from_dict({"name": "selfdesc", "backend": "python"})
    completed = PythonBackend.auto_complete_config(bare, model_dir)
    assert [(t.name, t.dims) for t in completed.inputs] == [("A", (2,))]
    assert completed.outputs[0].name == "B" and completed.max_batch_size == 4
    assert completed.dynamic_batching is not None
    backend = load_backend(model_dir, config=bare)
    try:
        [[resp]] = run_requests(backend, make_request("selfdesc", {"A": np.array([[1, 2]], np.int32)}))
    finally:
        backend.unload()
    np.testing.assert_array_equal(outputs_of(resp)["B"], [[2, 4]])


def test_models_without_the_hook_keep_their_config(tmp_path: Path) -> None:
    model_dir, config = write_model(tmp_path, "plain", "class TritonPythonModel:\n    pass\n")
    assert PythonBackend.auto_complete_config(config, model_dir) == config


def test_a_failing_hook_is_a_config_error(tmp_path: Path) -> None:
    code = """
        class TritonPythonModel:
            @staticmethod
            def auto_complete_config(cfg):
                cfg.set_max_batch_size(16)
                return cfg
    """
    model_dir, _ = write_model(tmp_path, "clash", code)
    config = ModelConfig.from_dict({"name": "clash", "backend": "python", "max_batch_size": 8})
    with pytest.raises(ConfigError, match="already says 8"):
        PythonBackend.auto_complete_config(config, model_dir)
