"""The inference server: FastAPI on uvicorn, serving the registry's models read-only.

Modules, one job each: `app` (factory and slow routes), `middleware` (security gate, ASGI
helpers), `fastpath` (the prediction routes), `codecs` and `inputs` (payloads and their checks),
`cache` (which version answers a name), `loaded` (verify, load, warm one version), `watcher`
(store polling), `batching` (micro-batches), `metrics`, `docs`, `server` (`modeldepot inference`).
"""
