"""TensorRT-LLM engines through its Executor API (`tensorrt_llm.bindings.executor`), imported lazily."""
