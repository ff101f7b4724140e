"""Model instances: the expansion of a config's instance_group entries into named instances."""

from __future__ import annotations

from dataclasses import dataclass

from server.repository.model_config import InstanceKind, ModelConfig


@dataclass(frozen=True)
class InstanceSpec:
    """One model instance; each runs its executions on a worker thread of its own."""

    name: str
    """Triton's naming: `<group name>_<index>`; a group's name defaults to `<model>_<group index>`."""
    kind: InstanceKind
    device_id: int = 0


def expand_instances(config: ModelConfig) -> list[InstanceSpec]:
    """One spec per instance: `count` per group, and `count` per listed GPU when `gpus` is set."""
    groups = config.instance_groups
    if not groups:
        return [InstanceSpec(f"{config.name}_0_0", InstanceKind.KIND_AUTO)]
    out: list[InstanceSpec] = []
    for g_index, group in enumerate(groups):
        group_name = group.name or f"{config.name}_{g_index}"
        devices = group.gpus or (0,)
        index = 0
        for device in devices:
            for _ in range(group.count):
                out.append(InstanceSpec(f"{group_name}_{index}", group.kind, device))
                index += 1
    return out
