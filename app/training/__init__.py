"""Training and the other background jobs: the runner around Flask-Executor (durable job rows,
progress, cancel, broken-pool recovery), the job kinds (train, compile an ONNX twin), the worker
side that runs in the pool's processes, the estimator allow-list and tabular data. No HTTP here:
the registry's routes hand requests in (docs/architecture.md)."""
