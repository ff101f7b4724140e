"""Request scheduling for tensor models: the dynamic batcher, its instance threads and response channels."""
