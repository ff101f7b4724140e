"""The LLM engine core: requests, KV block manager, scheduler and loop (pure Python: no torch, no grpc)."""
