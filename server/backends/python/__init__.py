"""The Python backend: runs models written for Triton's Python backend (`TritonPythonModel`) unchanged."""
