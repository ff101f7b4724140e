"""The model architecture read from a Hugging Face config.json: everything the Llama family varies on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from server.errors import LoadError


@dataclass(frozen=True)
class ArchFlavour:
    """What one Hugging Face architecture adds to plain Llama."""

    qkv_bias: bool = False
    """Qwen2 always has q/k/v biases (and no o_proj bias)."""
    qk_norm: bool = False
    """Qwen3 RMS-normalises each head of q and k before rotary embedding."""
    sliding_window_all_layers: bool = False
    """Mistral applies `sliding_window` (when set) to every layer."""


SUPPORTED_ARCHITECTURES: dict[str, ArchFlavour] = {
    "LlamaForCausalLM": ArchFlavour(),
    "MistralForCausalLM": ArchFlavour(sliding_window_all_layers=True),
    "Qwen2ForCausalLM": ArchFlavour(qkv_bias=True),
    "Qwen3ForCausalLM": ArchFlavour(qk_norm=True),
}

ROPE_TYPES = ("default", "linear", "llama3")


@dataclass(frozen=True)
class RopeConfig:
    """Rotary embedding parameters; `scaling` is one of ROPE_TYPES."""

    theta: float = 10000.0
    scaling: str = "default"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192

    @classmethod
    def from_hf(cls, config: Mapping[str, Any], max_position_embeddings: int) -> RopeConfig:
        """Reads `rope_parameters` (transformers 5) or `rope_theta` + `rope_scaling` (transformers 4)."""
        params = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
        if params and all(isinstance(v, Mapping) for v in params.values()):
            raise LoadError(f"per-layer-type rope parameters are not supported: {sorted(params)}")
        theta = params.get("rope_theta", config.get("rope_theta", 10000.0))
        scaling = str(params.get("rope_type", params.get("type", "default")))
        if scaling not in ROPE_TYPES:
            raise LoadError(f"unsupported rope scaling type '{scaling}' (supported: {', '.join(ROPE_TYPES)})")
        if params.get("partial_rotary_factor", 1.0) != 1.0:
            raise LoadError(f"partial_rotary_factor {params['partial_rotary_factor']} is not supported")
        try:
            return cls(
                theta=float(theta),
                scaling=scaling,
                factor=float(params.get("factor", 1.0)),
                low_freq_factor=float(params.get("low_freq_factor", 1.0)),
                high_freq_factor=float(params.get("high_freq_factor", 4.0)),
                original_max_position_embeddings=int(
                    params.get("original_max_position_embeddings", max_position_embeddings)
                ),
            )
        except (TypeError, ValueError) as e:
            raise LoadError(f"invalid rope parameters {params}: {e}") from e


@dataclass(frozen=True)
class ArchConfig:
    """A Llama-family decoder: sizes, per-architecture options, special token ids."""

    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    max_position_embeddings: int
    rope: RopeConfig
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    sliding_windows: tuple[int | None, ...] = ()
    """Per layer: attend only to the last N positions, or None for full attention."""
    eos_token_ids: tuple[int, ...] = ()
    dtype: str | None = None
    """The checkpoint's own dtype name (`dtype` / `torch_dtype`), if it says."""

    @classmethod
    def from_hf(cls, config: Mapping[str, Any], eos_override: Any = None) -> ArchConfig:
        """Builds from a parsed config.json; `eos_override` is generation_config.json's eos_token_id.

        Raises:
            LoadError: unsupported architecture or feature, or a missing/invalid field (named).
        """
        arch = _architecture(config)
        flavour = SUPPORTED_ARCHITECTURES[arch]
        act = config.get("hidden_act", "silu")
        if act != "silu":
            raise LoadError(f"{arch}: unsupported hidden_act '{act}' (only silu)")
        num_layers = _int(config, "num_hidden_layers")
        num_heads = _int(config, "num_attention_heads")
        hidden = _int(config, "hidden_size")
        max_pos = _int(config, "max_position_embeddings", 2048)
        attention_bias = bool(config.get("attention_bias", False))
        return cls(
            architecture=arch,
            vocab_size=_int(config, "vocab_size"),
            hidden_size=hidden,
            intermediate_size=_int(config, "intermediate_size"),
            num_layers=num_layers,
            num_heads=num_heads,
            num_kv_heads=_int(config, "num_key_value_heads", num_heads),
            head_dim=_int(config, "head_dim", hidden // num_heads),
            rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            max_position_embeddings=max_pos,
            rope=RopeConfig.from_hf(config, max_pos),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            qkv_bias=flavour.qkv_bias or attention_bias,
            o_bias=attention_bias,
            mlp_bias=bool(config.get("mlp_bias", False)),
            qk_norm=flavour.qk_norm,
            sliding_windows=_sliding_windows(config, flavour, num_layers),
            eos_token_ids=_token_ids(
                eos_override if eos_override is not None else config.get("eos_token_id")
            ),
            dtype=config.get("dtype") or config.get("torch_dtype"),
        ).validated()

    def validated(self) -> ArchConfig:
        if self.num_heads % self.num_kv_heads:
            raise LoadError(
                f"num_attention_heads ({self.num_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_kv_heads})"
            )
        if self.head_dim % 2:
            raise LoadError(f"head_dim must be even for rotary embeddings, got {self.head_dim}")
        return self

    @property
    def num_parameters(self) -> int:
        q, kv = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        per_layer = self.hidden_size * (2 * q + 2 * kv) + 3 * self.hidden_size * self.intermediate_size
        heads = 1 if self.tie_word_embeddings else 2
        return self.num_layers * per_layer + heads * self.vocab_size * self.hidden_size


def _architecture(config: Mapping[str, Any]) -> str:
    archs = config.get("architectures")
    supported = ", ".join(SUPPORTED_ARCHITECTURES)
    if not isinstance(archs, list) or not archs:
        raise LoadError(f"config.json has no 'architectures' list (supported: {supported})")
    for arch in archs:
        if arch in SUPPORTED_ARCHITECTURES:
            return str(arch)
    raise LoadError(f"unsupported architecture {', '.join(map(str, archs))} (supported: {supported})")


def _int(config: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = config.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise LoadError(f"config.json: '{key}' must be a positive integer, got {value!r}")
    return value


def _token_ids(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise LoadError(f"eos_token_id must be an int or a list of ints, got {value!r}")
    return tuple(dict.fromkeys(items))


def _sliding_windows(
    config: Mapping[str, Any], flavour: ArchFlavour, num_layers: int
) -> tuple[int | None, ...]:
    window = config.get("sliding_window")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window <= 0):
        raise LoadError(f"config.json: 'sliding_window' must be a positive integer or null, got {window!r}")
    layer_types = config.get("layer_types")
    if layer_types is not None and not flavour.sliding_window_all_layers:
        if not isinstance(layer_types, list) or len(layer_types) != num_layers:
            raise LoadError(
                f"config.json: 'layer_types' must list {num_layers} layer types, got {layer_types!r}"
            )
        known = {"full_attention": None, "sliding_attention": window}
        unknown = sorted({str(t) for t in layer_types} - set(known))
        if unknown:
            raise LoadError(f"unsupported layer types {unknown} (supported: {sorted(known)})")
        if "sliding_attention" in layer_types and window is None:
            raise LoadError("layer_types has sliding_attention layers but sliding_window is null")
        return tuple(known[t] for t in layer_types)
    if flavour.sliding_window_all_layers:
        return (window,) * num_layers
    if config.get("use_sliding_window") and window is not None:
        first = int(config.get("max_window_layers", num_layers))
        return tuple(window if i >= first else None for i in range(num_layers))
    return (None,) * num_layers
