"""The onnxruntime backend: ONNX models (`platform: "onnxruntime_onnx"`) with dynamic batching."""
