"""Hangar's own LLM engine backend: Llama-family models in torch over a paged KV cache."""
