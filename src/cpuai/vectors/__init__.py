"""Vector recall: INT8 HNSW indexes on faiss with real deletes, filters, growth and mmap re-rank.

``VectorIndex`` is the index; ``kinds`` lists flat, hnsw, hnsw-sq8 and ivf-sq8 and checks their
knobs; ``embedding`` turns texts into vectors through ``cpuai.runtime``; ``routes`` serves indexes.
"""

from cpuai.vectors.index import VectorIndex
from cpuai.vectors.kinds import KINDS, METRICS, IndexParams

__all__ = ["KINDS", "METRICS", "IndexParams", "VectorIndex"]
