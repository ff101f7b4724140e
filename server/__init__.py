"""Hangar: a Triton-compatible gRPC model server for LLMs."""

__version__ = "0.1.0"
