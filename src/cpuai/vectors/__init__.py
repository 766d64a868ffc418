"""Vector recall: INT8 HNSW indexes on faiss with real deletes, filters, growth and mmap re-rank.

``VectorIndex`` is the index; ``kinds`` lists flat, hnsw, hnsw-sq8 and ivf-sq8 and checks their
knobs; ``hnswlib_graph`` runs the hnsw kind on hnswlib instead of faiss; ``embedding`` turns texts
into vectors through ``cpuai.runtime``; ``routes`` serves indexes, and ``changelog`` persists the
adds and deletes they receive.
"""

import logging

# faiss's loader logs its SIMD probing at INFO ("Could not load library with AVX512 support ...") although
# the wheel dispatches SIMD at run time (compile options "DD AVX2 AVX512"); keep that noise off the CLI.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)

from cpuai.vectors.index import VectorIndex  # noqa: E402
from cpuai.vectors.kinds import KINDS, METRICS, IndexParams  # noqa: E402

__all__ = ["KINDS", "METRICS", "IndexParams", "VectorIndex"]
