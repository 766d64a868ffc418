"""Online inference: KServe v2, TF-Serving and plain endpoints with adaptive batching (``cpuai serve``).

``create_app(source, ServeConfig(...))`` builds the ASGI app; ``run`` serves it on uvicorn and
``ServerThread`` runs it in a background thread (tests, benchmarks). See docs/serving.md.
"""

from cpuai.serve.app import create_app
from cpuai.serve.config import ServeConfig
from cpuai.serve.server import ServerThread, free_port, run

__all__ = ["ServeConfig", "ServerThread", "create_app", "free_port", "run"]
