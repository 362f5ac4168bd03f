"""LitServe serving Assay's iris-species model file, run by LitServe's own virtualenv.

It imports nothing of the bench or of Assay (their packages are not in that virtualenv):
`python litserve_server.py MODEL_PATH PORT [MAX_BATCH_SIZE BATCH_TIMEOUT]`. A request is
`{"inputs": [[4 numbers], ...]}`, its answer `{"probabilities": [[one per class], ...]}`.
With MAX_BATCH_SIZE above 1, LitServe groups concurrent requests and the rows of all of them
go through one `predict_proba`.
"""

import sys
from typing import Any

import joblib  # type: ignore[import-untyped]  # only in the peer's virtualenv
import litserve as ls  # type: ignore[import-not-found]  # only in the peer's virtualenv
import numpy as np


class IrisAPI(ls.LitAPI):  # type: ignore[misc]  # LitServe is untyped here
    def __init__(self, model_path: str, **options: Any) -> None:
        super().__init__(**options)
        self.model_path = model_path

    def setup(self, device: str) -> None:
        self.model = joblib.load(self.model_path)

    # Unannotated, as LitServe's examples are: LitServe takes the parameter's annotation for
    # the request's type, and none means the JSON body.
    def decode_request(self, request):  # type: ignore[no-untyped-def]  # see above
        return np.asarray(request["inputs"], dtype=np.float64)

    def batch(self, inputs: list[Any]) -> list[Any]:
        return inputs  # requests of different sizes: concatenated in predict

    def predict(self, x: Any) -> Any:
        if isinstance(x, list):
            sizes = [len(m) for m in x]
            out = self.model.predict_proba(np.concatenate(x))
            return np.split(out, np.cumsum(sizes)[:-1])
        return self.model.predict_proba(x)

    def unbatch(self, output: Any) -> Any:
        return output

    def encode_response(self, output):  # type: ignore[no-untyped-def]  # as decode_request
        return {"probabilities": output.tolist()}


def main(argv: list[str]) -> None:
    model_path, port = argv[0], int(argv[1])
    batching = {}
    if len(argv) > 2:
        batching = {"max_batch_size": int(argv[2]), "batch_timeout": float(argv[3])}
    server = ls.LitServer(IrisAPI(model_path, **batching), accelerator="cpu")
    server.run(host="127.0.0.1", port=port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
