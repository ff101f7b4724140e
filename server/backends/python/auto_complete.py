"""Config auto-complete for Python models: runs the model's own `auto_complete_config`, as Triton does."""

from __future__ import annotations

from pathlib import Path

from server.backends.python.config_json import config_json
from server.backends.python.model_module import add_search_path, import_model, remove_search_path
from server.backends.python.pb_model_config import ModelConfig as PbModelConfig
from server.backends.version_files import latest_version_file
from server.errors import ConfigError, HangarError, LoadError
from server.repository.model_config import ModelConfig


def auto_complete(config: ModelConfig, model_dir: Path, default_filename: str) -> ModelConfig:
    """The config after `TritonPythonModel.auto_complete_config(pb_utils.ModelConfig)`, if the model has one.

    The model file of the highest version that has one is consulted; a model file that fails to import
    is left for `load()` to report against its version.

    Raises:
        ConfigError: the model's auto_complete_config raised or returned something else than the config.
    """
    path = latest_version_file(model_dir, config.default_model_filename or default_filename)
    if path is None:
        return config
    version_dir = path.parent
    add_search_path(version_dir)
    try:
        module = import_model(path, f"{config.name}_autocomplete")
    except LoadError:
        remove_search_path(version_dir)
        return config
    try:
        hook = getattr(module.model_class, "auto_complete_config", None)
        if hook is None:
            return config
        wrapper = PbModelConfig(config_json(config))
        try:
            result = hook(wrapper)
        except Exception as e:
            raise ConfigError(
                f"auto_complete_config of model '{config.name}' failed: {type(e).__name__}: {e}"
            ) from e
        if not isinstance(result, PbModelConfig):
            raise ConfigError(
                f"auto_complete_config of model '{config.name}' returned {type(result).__name__}; "
                "it must return the pb_utils.ModelConfig it was given"
            )
        try:
            return ModelConfig.from_dict(result.as_dict(), default_name=config.name)
        except HangarError as e:
            raise ConfigError(
                f"auto_complete_config of model '{config.name}' produced a bad config: {e}"
            ) from e
    finally:
        module.unload()
        remove_search_path(version_dir)
