"""Typed, frozen view of a model's config.pbtxt (model_config.proto), built from its JSON form."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from server.errors import ConfigError
from server.types import DataType

# The JSON form is what protobuf's MessageToDict(preserving_proto_field_name=True) produces for
# inference.ModelConfig: int64 fields arrive as strings, enums as their names.


class VersionPolicyKind(enum.Enum):
    LATEST = "latest"
    ALL = "all"
    SPECIFIC = "specific"


@dataclass(frozen=True)
class VersionPolicy:
    kind: VersionPolicyKind = VersionPolicyKind.LATEST
    num_versions: int = 1
    versions: tuple[int, ...] = ()


@dataclass(frozen=True)
class TensorConfig:
    """A ModelInput or ModelOutput; `dims` excludes the batch dimension when max_batch_size > 0."""

    name: str
    data_type: DataType
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None = None
    optional: bool = False
    allow_ragged_batch: bool = False
    is_shape_tensor: bool = False
    label_filename: str = ""


@dataclass(frozen=True)
class QueuePolicy:
    max_queue_size: int = 0
    """0 means unbounded."""
    default_timeout_microseconds: int = 0
    timeout_action: str = "REJECT"
    allow_timeout_override: bool = False


@dataclass(frozen=True)
class DynamicBatching:
    preferred_batch_size: tuple[int, ...] = ()
    max_queue_delay_microseconds: int = 0
    preserve_ordering: bool = False
    default_queue_policy: QueuePolicy = field(default_factory=QueuePolicy)


class InstanceKind(enum.Enum):
    KIND_AUTO = "KIND_AUTO"
    KIND_GPU = "KIND_GPU"
    KIND_CPU = "KIND_CPU"
    KIND_MODEL = "KIND_MODEL"


@dataclass(frozen=True)
class InstanceGroup:
    name: str = ""
    count: int = 1
    kind: InstanceKind = InstanceKind.KIND_AUTO
    gpus: tuple[int, ...] = ()


@dataclass(frozen=True)
class ModelConfig:
    """The fields Hangar interprets; every other config field rides along in `extra` unchanged."""

    name: str
    platform: str = ""
    backend: str = ""
    max_batch_size: int = 0
    version_policy: VersionPolicy = field(default_factory=VersionPolicy)
    inputs: tuple[TensorConfig, ...] = ()
    outputs: tuple[TensorConfig, ...] = ()
    dynamic_batching: DynamicBatching | None = None
    instance_groups: tuple[InstanceGroup, ...] = ()
    default_model_filename: str = ""
    parameters: Mapping[str, str] = field(default_factory=dict)
    decoupled: bool = False
    model_warmup: tuple[Mapping[str, Any], ...] = ()
    model_metrics: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def backend_name(self) -> str:
        """The registry key: `backend`, else derived from `platform` (onnxruntime_onnx -> onnxruntime)."""
        if self.backend:
            return self.backend
        return _PLATFORM_BACKENDS.get(self.platform, self.platform)

    @property
    def instance_count(self) -> int:
        return sum(g.count for g in self.instance_groups) or 1

    def input(self, name: str) -> TensorConfig | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorConfig | None:
        return next((t for t in self.outputs if t.name == name), None)

    def with_changes(self, **changes: Any) -> ModelConfig:
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, default_name: str = "") -> ModelConfig:
        return _from_dict(data, default_name)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


_PLATFORM_BACKENDS = {"onnxruntime_onnx": "onnxruntime", "pytorch_libtorch": "pytorch"}


def _int(value: Any, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected an integer, got {value!r}") from None


def _tensor(d: Mapping[str, Any], where: str) -> TensorConfig:
    name = d.get("name", "")
    if not name:
        raise ConfigError(f"{where}: every tensor needs a name")
    dtype = d.get("data_type", "TYPE_INVALID")
    if dtype == "TYPE_INVALID":
        raise ConfigError(f"{where} '{name}': data_type is missing or TYPE_INVALID")
    dims = tuple(_int(x, f"{where} '{name}' dims") for x in d.get("dims", ()))
    if any(x < -1 or x == 0 for x in dims):
        raise ConfigError(f"{where} '{name}': dims {list(dims)} must be positive or -1")
    reshape = d.get("reshape")
    return TensorConfig(
        name=name,
        data_type=DataType.from_config(dtype),
        dims=dims,
        reshape=None if reshape is None else tuple(_int(x, "reshape") for x in reshape.get("shape", ())),
        optional=bool(d.get("optional", False)),
        allow_ragged_batch=bool(d.get("allow_ragged_batch", False)),
        is_shape_tensor=bool(d.get("is_shape_tensor", False)),
        label_filename=d.get("label_filename", ""),
    )


def _version_policy(d: Mapping[str, Any] | None) -> VersionPolicy:
    if not d:
        return VersionPolicy()
    if "all" in d:
        return VersionPolicy(VersionPolicyKind.ALL)
    if "specific" in d:
        versions = tuple(_int(v, "version_policy.specific") for v in d["specific"].get("versions", ()))
        return VersionPolicy(VersionPolicyKind.SPECIFIC, versions=versions)
    n = _int(d.get("latest", {}).get("num_versions", 1), "version_policy.latest.num_versions")
    if n < 1:
        raise ConfigError(f"version_policy.latest.num_versions must be >= 1, got {n}")
    return VersionPolicy(VersionPolicyKind.LATEST, num_versions=n)


def _dynamic_batching(d: Mapping[str, Any] | None) -> DynamicBatching | None:
    if d is None:
        return None
    qp = d.get("default_queue_policy", {})
    return DynamicBatching(
        preferred_batch_size=tuple(
            _int(x, "preferred_batch_size") for x in d.get("preferred_batch_size", ())
        ),
        max_queue_delay_microseconds=_int(d.get("max_queue_delay_microseconds", 0), "max_queue_delay"),
        preserve_ordering=bool(d.get("preserve_ordering", False)),
        default_queue_policy=QueuePolicy(
            max_queue_size=_int(qp.get("max_queue_size", 0), "max_queue_size"),
            default_timeout_microseconds=_int(qp.get("default_timeout_microseconds", 0), "timeout"),
            timeout_action=qp.get("timeout_action", "REJECT"),
            allow_timeout_override=bool(qp.get("allow_timeout_override", False)),
        ),
    )


def _instance_group(d: Mapping[str, Any]) -> InstanceGroup:
    count = _int(d.get("count", 1), "instance_group.count")
    if count < 1:
        raise ConfigError(f"instance_group.count must be >= 1, got {count}")
    return InstanceGroup(
        name=d.get("name", ""),
        count=count,
        kind=InstanceKind(d.get("kind", "KIND_AUTO")),
        gpus=tuple(_int(g, "instance_group.gpus") for g in d.get("gpus", ())),
    )


_HANDLED = {
    "name", "platform", "backend", "max_batch_size", "version_policy", "input", "output",
    "dynamic_batching", "instance_group", "default_model_filename", "parameters",
    "model_transaction_policy", "model_warmup", "model_metrics",
}  # fmt: skip


_UNSUPPORTED = {
    "sequence_batching": "sequence batching",
    "ensemble_scheduling": "ensemble scheduling",
}
"""Config sections that change what a model computes: refused rather than silently ignored."""


def unenforced_fields(d: Mapping[str, Any]) -> list[str]:
    """Fields set in a config's JSON form that Hangar accepts (Triton configs carry them) but does not
    act on: scheduling and optimization hints, never what a model computes."""
    found = []
    if d.get("optimization"):
        found.append("optimization")
    groups = d.get("instance_group") or ()
    if any(isinstance(g, Mapping) and g.get("rate_limiter") for g in groups):
        found.append("instance_group.rate_limiter")
    batching = d.get("dynamic_batching")
    if isinstance(batching, Mapping) and batching.get("preserve_ordering"):
        found.append("dynamic_batching.preserve_ordering")
    return found


def _refuse_unsupported(d: Mapping[str, Any], name: str) -> None:
    for key, what in _UNSUPPORTED.items():
        if key in d:
            raise ConfigError(f"model '{name}': {key}: {what} is not supported by Hangar yet")
    if d.get("response_cache", {}).get("enable"):
        raise ConfigError(f"model '{name}': response_cache: the response cache is not supported yet")


def _from_dict(d: Mapping[str, Any], default_name: str) -> ModelConfig:
    _refuse_unsupported(d, d.get("name", "") or default_name)
    mbs = _int(d.get("max_batch_size", 0), "max_batch_size")
    if mbs < 0:
        raise ConfigError(f"max_batch_size must be >= 0, got {mbs}")
    params = {k: (v.get("string_value", "") if isinstance(v, Mapping) else str(v))
              for k, v in d.get("parameters", {}).items()}  # fmt: skip
    return ModelConfig(
        name=d.get("name", "") or default_name,
        platform=d.get("platform", ""),
        backend=d.get("backend", ""),
        max_batch_size=mbs,
        version_policy=_version_policy(d.get("version_policy")),
        inputs=tuple(_tensor(t, "input") for t in d.get("input", ())),
        outputs=tuple(_tensor(t, "output") for t in d.get("output", ())),
        dynamic_batching=_dynamic_batching(d.get("dynamic_batching")),
        instance_groups=tuple(_instance_group(g) for g in d.get("instance_group", ())),
        default_model_filename=d.get("default_model_filename", ""),
        parameters=params,
        decoupled=bool(d.get("model_transaction_policy", {}).get("decoupled", False)),
        model_warmup=tuple(d.get("model_warmup", ())),
        model_metrics=dict(d.get("model_metrics", {})),
        extra={k: v for k, v in d.items() if k not in _HANDLED},
    )


def _tensor_dict(t: TensorConfig, is_input: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": t.name,
        "data_type": t.data_type.config_name,
        "dims": [str(x) for x in t.dims],
    }
    if t.reshape is not None:
        out["reshape"] = {"shape": [str(x) for x in t.reshape]}
    if is_input and t.optional:
        out["optional"] = True
    if is_input and t.allow_ragged_batch:
        out["allow_ragged_batch"] = True
    if t.is_shape_tensor:
        out["is_shape_tensor"] = True
    if not is_input and t.label_filename:
        out["label_filename"] = t.label_filename
    return out


def _to_dict(c: ModelConfig) -> dict[str, Any]:
    d: dict[str, Any] = dict(c.extra)
    d.update(name=c.name, platform=c.platform, backend=c.backend, max_batch_size=c.max_batch_size)
    vp = c.version_policy
    if vp.kind is VersionPolicyKind.ALL:
        d["version_policy"] = {"all": {}}
    elif vp.kind is VersionPolicyKind.SPECIFIC:
        d["version_policy"] = {"specific": {"versions": [str(v) for v in vp.versions]}}
    else:
        d["version_policy"] = {"latest": {"num_versions": vp.num_versions}}
    d["input"] = [_tensor_dict(t, True) for t in c.inputs]
    d["output"] = [_tensor_dict(t, False) for t in c.outputs]
    if c.dynamic_batching is not None:
        db, qp = c.dynamic_batching, c.dynamic_batching.default_queue_policy
        d["dynamic_batching"] = {
            "preferred_batch_size": list(db.preferred_batch_size),
            "max_queue_delay_microseconds": str(db.max_queue_delay_microseconds),
            "preserve_ordering": db.preserve_ordering,
            "default_queue_policy": {
                "max_queue_size": qp.max_queue_size,
                "default_timeout_microseconds": str(qp.default_timeout_microseconds),
                "timeout_action": qp.timeout_action,
                "allow_timeout_override": qp.allow_timeout_override,
            },
        }
    d["instance_group"] = [
        {"name": g.name, "count": g.count, "kind": g.kind.value, "gpus": list(g.gpus)}
        for g in c.instance_groups
    ]
    d["default_model_filename"] = c.default_model_filename
    d["parameters"] = {k: {"string_value": v} for k, v in c.parameters.items()}
    d["model_transaction_policy"] = {"decoupled": c.decoupled}
    if c.model_warmup:
        d["model_warmup"] = [dict(w) for w in c.model_warmup]
    if c.model_metrics:
        d["model_metrics"] = dict(c.model_metrics)
    return d
