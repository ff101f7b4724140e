"""PythonBackend: serves a TritonPythonModel through the dynamic batcher, one model object per instance."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from server.backends.base import ModelVersionSpec
from server.backends.batched import BatchedBackend
from server.backends.python import pb_utils
from server.backends.python.auto_complete import auto_complete
from server.backends.python.config_json import config_json
from server.backends.python.instance import ModelInstance
from server.backends.python.model_module import add_search_path, import_model, remove_search_path
from server.backends.python.outputs import OutputAdapter
from server.backends.python.pb_request import InferenceRequest
from server.backends.python.pb_sender import BatchSenders
from server.errors import BackendError
from server.repository.model_config import InstanceKind, ModelConfig
from server.scheduling.batch import Batch
from server.scheduling.inline_gate import inline_gate
from server.scheduling.instances import InstanceSpec, expand_instances
from server.scheduling.response_channel import as_domain_error, error_response, log_late_error
from server.types import InferRequest, InferResponse

log = logging.getLogger(__name__)
pb_utils.register()

DEFAULT_MODEL_FILENAME = "model.py"
_KIND_NAMES = {InstanceKind.KIND_GPU: "GPU", InstanceKind.KIND_MODEL: "MODEL"}  # AUTO and CPU run on CPU


class PythonBackend(BatchedBackend):
    """`backend: "python"`: `<version>/model.py` (or default_model_filename) defining TritonPythonModel."""

    def __init__(self, spec: ModelVersionSpec) -> None:
        super().__init__(spec)
        config = self.spec.config
        self._decoupled = config.decoupled
        self._adapter = OutputAdapter(config)
        self._send_lock = threading.Lock()
        self._instances: list[ModelInstance] = []
        self._on_path = False

    @classmethod
    def auto_complete_config(cls, config: ModelConfig, model_dir: Path) -> ModelConfig:
        return auto_complete(config, model_dir, DEFAULT_MODEL_FILENAME)

    def load(self) -> None:
        spec = self.spec
        path = spec.version_dir / (spec.config.default_model_filename or DEFAULT_MODEL_FILENAME)
        config_text = json.dumps(config_json(spec.config))
        instances = expand_instances(spec.config)
        add_search_path(spec.version_dir)
        self._on_path = True
        try:
            for inst in instances:
                module = import_model(path, f"{spec.name}_{spec.version}_{inst.name}")
                instance = ModelInstance(module, self._args(inst, config_text))
                instance.initialize()
                self._instances.append(instance)
        except BaseException:
            self._release()
            raise
        gate = inline_gate(spec.config, len(instances), can_inline=self._can_inline(), default="false")
        self._start_batcher(instances, self._execute, gate)

    def _can_inline(self) -> bool:
        # decoupled models stream from execute; coroutine models need their own loop
        return not self._decoupled and not any(i.blocks_on_own_loop for i in self._instances)

    def _args(self, inst: InstanceSpec, config_text: str) -> dict[str, str]:
        return {
            "model_config": config_text,
            "model_instance_kind": _KIND_NAMES.get(inst.kind, "CPU"),
            "model_instance_name": inst.name,
            "model_instance_device_id": str(inst.device_id),
            "model_repository": str(self.spec.model_dir),
            "model_version": str(self.spec.version),
            "model_name": self.spec.name,
        }

    def _release(self) -> None:
        for instance in self._instances:
            instance.finalize()
        self._instances = []
        if self._on_path:
            remove_search_path(self.spec.version_dir)
            self._on_path = False

    def _execute(self, batch: Batch) -> list[InferResponse | None]:
        instance = self._instances[batch.instance]
        senders = BatchSenders(batch, self._adapter, self._decoupled, self._send_lock)
        requested = self._adapter.requested
        requests = [InferenceRequest.wrap(r, senders, requested(r), i) for i, r in enumerate(batch.requests)]
        batch.input_end_ns = time.monotonic_ns()
        try:
            result = instance.execute(requests)
        except Exception as e:
            log.warning("model instance '%s' raised in execute", instance.name, exc_info=True)
            failure = BackendError(
                f"Failed to process the request(s) for model instance '{instance.name}', message: "
                f"{as_domain_error(e).message}"
            )
            return self._fail_unanswered(batch.requests, senders, failure)
        finally:
            batch.output_start_ns = time.monotonic_ns()
        if self._decoupled:
            if result is None:
                return [None] * len(batch.requests)
            return self._fail_unanswered(batch.requests, senders, BackendError(
                f"model '{self.spec.name}' is decoupled: execute must return None and send responses "
                "through each request's response sender"
            ))  # fmt: skip
        return self._collect(batch.requests, senders, result)

    def _collect(
        self, requests: list[InferRequest], senders: BatchSenders, result: object
    ) -> list[InferResponse | None]:
        """A non-decoupled model's answer: the list it returned, or what it sent through the senders."""
        if result is None:  # fine for the requests it answered through their senders
            unanswered = BackendError(
                f"model '{self.spec.name}' returned None from execute without sending a response; "
                "a non-decoupled model must return one InferenceResponse per request"
            )
            claim = senders.claim
            return [error_response(r, unanswered) if claim(i) else None for i, r in enumerate(requests)]
        if not isinstance(result, list | tuple) or len(result) != len(requests):
            got = f"{len(result)} responses" if isinstance(result, list | tuple) else type(result).__name__
            return self._fail_unanswered(requests, senders, BackendError(
                f"model '{self.spec.name}' returned {got} for {len(requests)} requests; a non-decoupled "
                "model must return a list with exactly one InferenceResponse per request"
            ))  # fmt: skip
        to_domain, claim = self._adapter.to_domain, senders.claim
        return [
            to_domain(r, pb) if claim(i) else None
            for i, (r, pb) in enumerate(zip(requests, result, strict=True))
        ]

    def _fail_unanswered(
        self, requests: Sequence[InferRequest], senders: BatchSenders, error: Exception
    ) -> list[InferResponse | None]:
        """Fails the requests the model has not answered; for those it has, the error is only logged."""
        out: list[InferResponse | None] = []
        for i, r in enumerate(requests):
            if senders.claim(i):
                out.append(error_response(r, error))
            else:
                log_late_error(self.spec.name, str(self.spec.version), r.id, error)
                out.append(None)
        return out
