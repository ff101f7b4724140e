"""Instance expansion: Triton's instance names, counts per group and per listed GPU."""

from __future__ import annotations

from server.repository.model_config import InstanceKind, ModelConfig
from server.scheduling.instances import InstanceSpec, expand_instances


def test_no_instance_group_means_one_auto_instance() -> None:
    assert expand_instances(ModelConfig("m")) == [InstanceSpec("m_0_0", InstanceKind.KIND_AUTO)]


def test_groups_counts_and_gpus() -> None:
    config = ModelConfig.from_dict({
        "name": "m",
        "instance_group": [
            {"count": 2, "kind": "KIND_CPU"},
            {"name": "fast", "count": 1, "kind": "KIND_GPU", "gpus": [0, 1]},
        ],
    })  # fmt: skip
    assert expand_instances(config) == [
        InstanceSpec("m_0_0", InstanceKind.KIND_CPU, 0),
        InstanceSpec("m_0_1", InstanceKind.KIND_CPU, 0),
        InstanceSpec("fast_0", InstanceKind.KIND_GPU, 0),
        InstanceSpec("fast_1", InstanceKind.KIND_GPU, 1),
    ]
