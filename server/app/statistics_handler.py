"""ModelStatistics: each loaded version's stats snapshot as Triton's statistics message (durations in ns)."""

from __future__ import annotations

from server.errors import InvalidInput
from server.protocol.gen import grpc_service_pb2 as pb
from server.repository.manager import ModelManager
from server.stats import Duration, ResponseStats, StatsSnapshot


class StatisticsHandler:
    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager

    def statistics(self, request: pb.ModelStatisticsRequest) -> pb.ModelStatisticsResponse:
        """Empty name: every loaded model; empty version: every loaded version of it."""
        version = _version(request.version)
        loaded = [
            v
            for v in self._manager.loaded_versions()
            if (not request.name or v.name == request.name) and (version is None or v.version == version)
        ]
        if request.name and not loaded:
            what = f"'{request.name}'" + (f" version {version}" if version is not None else "")
            raise InvalidInput(f"requested model {what} is not available")
        loaded.sort(key=lambda v: (v.name, v.version))
        return pb.ModelStatisticsResponse(
            model_stats=[model_statistics(v.name, v.version, v.stats.snapshot()) for v in loaded]
        )


def _version(text: str) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"failed to get model version from specified version string '{text}'") from None


def _duration(d: Duration) -> pb.StatisticDuration:
    return pb.StatisticDuration(count=d.count, ns=d.ns)


def model_statistics(name: str, version: int, s: StatsSnapshot) -> pb.ModelStatistics:
    return pb.ModelStatistics(
        name=name,
        version=str(version),
        last_inference=s.last_inference_ms,
        inference_count=s.inference_count,
        execution_count=s.execution_count,
        inference_stats=pb.InferStatistics(
            success=_duration(s.success),
            fail=_duration(s.fail),
            queue=_duration(s.queue),
            compute_input=_duration(s.compute_input),
            compute_infer=_duration(s.compute_infer),
            compute_output=_duration(s.compute_output),
        ),
        batch_stats=[
            pb.InferBatchStatistics(
                batch_size=size,
                compute_input=_duration(b.compute_input),
                compute_infer=_duration(b.compute_infer),
                compute_output=_duration(b.compute_output),
            )
            for size, b in sorted(s.batches.items())
        ],
        response_stats={str(i): _response_statistics(r) for i, r in s.responses.items()},
    )


def _response_statistics(r: ResponseStats) -> pb.InferResponseStatistics:
    return pb.InferResponseStatistics(
        compute_infer=_duration(r.compute_infer),
        compute_output=_duration(r.compute_output),
        success=_duration(r.success),
        fail=_duration(r.fail),
        empty_response=_duration(r.empty_response),
        cancel=_duration(r.cancel),
    )
