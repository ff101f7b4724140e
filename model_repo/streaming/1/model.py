"""streaming: a decoupled model that sends its responses from a thread and stops early when cancelled."""

import threading
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.threads = []

    def execute(self, requests):
        for request in requests:
            n = int(pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()[0])
            delay = pb_utils.get_input_tensor_by_name(request, "DELAY_MS")
            delay_s = 0.0 if delay is None else int(delay.as_numpy()[0]) / 1000.0
            thread = threading.Thread(target=self.stream, args=(request.get_response_sender(), n, delay_s))
            thread.start()
            self.threads.append(thread)
        self.threads = [t for t in self.threads if t.is_alive()]
        return None  # decoupled: every response goes through the response sender

    def stream(self, sender, n, delay_s):
        for i in range(n):
            if i:
                time.sleep(delay_s)
            if sender.is_cancelled():
                break
            out = pb_utils.Tensor("OUT", np.array([i], dtype=np.int32))
            sender.send(pb_utils.InferenceResponse(output_tensors=[out]))
        sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    def finalize(self):
        for thread in self.threads:
            thread.join()
