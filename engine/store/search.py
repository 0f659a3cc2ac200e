"""Search over the segment store: hybrid text, embedding vector and time-range queries.

One entry point, :func:`search`, picks the retrieval from the :class:`SearchQuery`:

* ``text``: the query is embedded with all-MiniLM-L6-v2 and searched over ``text_emb``
  (semantic) and, as keywords, over ``transcript`` (BM25 full-text); the two ranked lists are
  fused by reciprocal rank fusion, ``score = sum 1 / (RRF_K + rank)`` over the lists a row is
  in, so a row found by both beats a row found by one (Cormack et al., SIGIR 2009).
* ``vector`` + ``vector_column``: nearest neighbours by cosine distance in ``audio_emb``,
  ``video_emb`` or ``text_emb``; the caller embeds the query through the ingestion path.
  ``score`` is the cosine similarity.
* neither: a time query -- the rows matching the filters, ordered by time; ``score`` is 0.

Filters (``stream_id``, and ``from_us``/``to_us`` selecting segments that overlap
``[from_us, to_us)``) are applied *before* the nearest-neighbour / BM25 ranking (prefilter), so
``k`` hits come back whenever ``k`` rows match, however rare the filter is.

The two legs of a text query are run here rather than through LanceDB's hybrid builder so each
hit can say which retrieval found it, and so each leg selects only its own score column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyarrow as pa

from engine.errors import InvalidInputError
from engine.store.index_policy import exact_filter_max_rows, nearest_query
from engine.store.table import DISTANCE, EMBEDDING_COLUMNS, SegmentStore, sql_quote

#: Rank offset of reciprocal rank fusion (60, the value of the original paper).
RRF_K = 60
# Knobs for an IVF_HNSW_SQ index built before index plans were recorded (tables of earlier
# versions; ignored by exact flat search). Measured on 50k x 256-d clustered vectors: LanceDB's
# defaults give recall@10 0.83; re-ranking 4*k candidates with the exact vectors undoes the
# 8-bit SQ error and a wider HNSW beam (ef) recovers graph misses -- together recall 1.0.
# Indexes built now carry their own plan (engine.store.index_policy).
_LEGACY_REFINE_FACTOR = 4
_LEGACY_MIN_EF = 100
#: ``SearchHit.retrieval`` values.
RETRIEVAL_TEXT_EMB = "text_emb"
RETRIEVAL_FTS = "fts"
RETRIEVAL_BOTH = "text_emb+fts"
RETRIEVAL_TIME = "time"

_HIT_COLUMNS = ["stream_id", "segment_index", "t_start_us", "t_end_us", "transcript"]


class QueryError(InvalidInputError):
    """A search query is invalid (names the offending field)."""


@dataclass(frozen=True)
class SearchQuery:
    """What to search for.

    Attributes:
        text: Natural-language query (hybrid semantic + full-text search).
        vector: Query embedding for ``vector_column`` (float, 1-D).
        vector_column: Embedding column searched with ``vector``: ``audio_emb``, ``video_emb``
            or ``text_emb``.
        stream_id: Only segments of this stream.
        from_us: Only segments ending after this time (unified timeline, microseconds).
        to_us: Only segments starting before this time.
        k: Maximum number of hits.
    """

    text: Optional[str] = None
    vector: Optional[np.ndarray] = None
    vector_column: Optional[str] = None
    stream_id: Optional[str] = None
    from_us: Optional[int] = None
    to_us: Optional[int] = None
    k: int = 10


@dataclass(frozen=True)
class SearchHit:
    """One matching segment.

    Attributes:
        stream_id: Stream of the segment.
        segment_index: Segment number within the stream.
        t_start_us: Segment start (unified timeline).
        t_end_us: Segment end (exclusive).
        transcript: Transcript text of the segment, if any.
        score: Higher is better; RRF score for text queries, cosine similarity for vector
            queries, 0 for time queries.
        retrieval: What found it: ``text_emb``, ``fts`` or ``text_emb+fts`` (text query), the
            embedding column name (vector query), or ``time``.
    """

    stream_id: str
    segment_index: int
    t_start_us: int
    t_end_us: int
    transcript: Optional[str]
    score: float
    retrieval: str


def _filter_sql(q: SearchQuery) -> Optional[str]:
    parts = []
    if q.stream_id is not None:
        parts.append(f"stream_id = {sql_quote(q.stream_id)}")
    # Half-open segments [t_start, t_end) overlap [from, to) iff t_end > from and t_start < to.
    if q.from_us is not None:
        parts.append(f"t_end_us > {int(q.from_us)}")
    if q.to_us is not None:
        parts.append(f"t_start_us < {int(q.to_us)}")
    return " AND ".join(parts) if parts else None


def _validate(store: SegmentStore, q: SearchQuery) -> Optional[np.ndarray]:
    """Checks ``q`` and returns the query vector as float32 (or ``None``)."""
    if isinstance(q.k, bool) or not isinstance(q.k, (int, np.integer)) or q.k <= 0:
        raise QueryError("k", f"must be a positive integer, got {q.k!r}")
    for name in ("from_us", "to_us"):
        v = getattr(q, name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
            raise QueryError(name, f"must be integer microseconds, got {v!r}")
    if q.from_us is not None and q.to_us is not None and q.from_us >= q.to_us:
        raise QueryError("to_us", f"must be > from_us ({q.from_us}), got {q.to_us}")
    if q.stream_id is not None and not isinstance(q.stream_id, str):
        raise QueryError("stream_id", f"must be a string, got {type(q.stream_id).__name__}")
    if q.text is not None and (not isinstance(q.text, str) or not q.text.strip()):
        raise QueryError("text", "must be a non-empty string")
    if q.text is not None and q.vector is not None:
        raise QueryError("vector", "give either text or vector, not both")
    if q.vector is None:
        if q.vector_column is not None:
            raise QueryError("vector_column", "set without a vector")
        if q.text is None and _filter_sql(q) is None:
            raise QueryError("query", "needs text, a vector, or a stream/time filter")
        return None
    if q.vector_column not in EMBEDDING_COLUMNS:
        raise QueryError("vector_column",
                         f"must be one of {EMBEDDING_COLUMNS}, got {q.vector_column!r}")
    vec = np.asarray(q.vector, dtype=np.float32)
    dim = store.config.emb_dim(q.vector_column)
    if vec.shape != (dim,):
        raise QueryError("vector", f"{q.vector_column} needs shape ({dim},), got {vec.shape}")
    if not np.isfinite(vec).all():
        raise QueryError("vector", "contains NaN or Inf")
    if not np.any(vec):
        raise QueryError("vector", "is all zeros (cosine distance undefined)")
    return vec


def _vector_leg(store: SegmentStore, column: str, vec: np.ndarray, where: Optional[str],
                k: int) -> pa.Table:
    ds = store.dataset()
    plan = store.plans.get(store, column, ds)  # the plan recorded at the version searched
    if plan is not None:
        # Indexes built by the policy are searched through the Lance dataset itself: the same
        # scan as LanceDB's query builder without its per-query wrapping (measured at 300k
        # rows: 5.7 vs 10.1 ms unfiltered, 6.1 vs 16.8 ms with a one-stream filter).
        # Prefilter: the filter's rows are found first (stream/time scalar indexes make that
        # cheap) and the nearest of *those* are returned, k whenever k rows match.
        nearest = nearest_query(plan, column, vec, k)
        if where is not None and ds.count_rows(filter=where) <= exact_filter_max_rows(plan, k):
            nearest = {"column": column, "q": vec, "k": k, "metric": DISTANCE, "use_index": False}
        return ds.to_table(columns=_HIT_COLUMNS, filter=where, prefilter=where is not None, nearest=nearest)
    query = (store.table.search(vec, vector_column_name=column).distance_type(DISTANCE)
             .ef(max(_LEGACY_MIN_EF, k)).refine_factor(_LEGACY_REFINE_FACTOR)
             .select(_HIT_COLUMNS + ["_distance"]).limit(k))
    if where is not None:
        query = query.where(where, prefilter=True)
    return query.to_arrow()


def _fts_leg(store: SegmentStore, text: str, where: Optional[str], k: int) -> pa.Table:
    # Without an FTS index LanceDB still answers by scanning (measured), so a text query works
    # before the first ensure_indexes(); the index only makes it fast.
    query = (store.table.search(text, query_type="fts", fts_columns="transcript")
             .select(_HIT_COLUMNS + ["_score"])
             .limit(k))
    if where is not None:
        query = query.where(where, prefilter=True)
    return query.to_arrow()


def _hit(rec: dict, score: float, retrieval: str) -> SearchHit:
    return SearchHit(stream_id=rec["stream_id"], segment_index=int(rec["segment_index"]),
                     t_start_us=int(rec["t_start_us"]), t_end_us=int(rec["t_end_us"]),
                     transcript=rec["transcript"], score=float(score), retrieval=retrieval)


def _fuse(semantic: pa.Table, keyword: pa.Table, k: int) -> list[SearchHit]:
    """Reciprocal rank fusion of two ranked result tables, keyed on the segment key."""
    scores: dict[tuple, float] = {}
    recs: dict[tuple, dict] = {}
    found_by: dict[tuple, set] = {}
    for leg, table in ((RETRIEVAL_TEXT_EMB, semantic), (RETRIEVAL_FTS, keyword)):
        for rank, rec in enumerate(table.to_pylist(), start=1):
            key = (rec["stream_id"], rec["segment_index"])
            scores[key] = scores.get(key, 0.0) + 1.0 / (RRF_K + rank)
            recs.setdefault(key, rec)
            found_by.setdefault(key, set()).add(leg)
    # Ties (same ranks in different lists) break on the key so results are deterministic.
    order = sorted(scores, key=lambda key: (-scores[key], key))[:k]
    return [_hit(recs[key], scores[key],
                 RETRIEVAL_BOTH if len(found_by[key]) == 2 else next(iter(found_by[key])))
            for key in order]


def search(store: SegmentStore, query: SearchQuery, embedder=None) -> list[SearchHit]:
    """Runs ``query`` against ``store``.

    Args:
        store: The segment store.
        query: What to find (see :class:`SearchQuery`).
        embedder: Text embedder for text queries (anything with ``embed(list[str])``);
            defaults to the process-wide all-MiniLM-L6-v2 of :mod:`engine.store.text_embed`.

    Returns:
        Up to ``query.k`` hits, best first (time queries: earliest first).

    Raises:
        QueryError: The query is invalid (no query and no filter, ``k <= 0``, wrong vector
            dimension, unknown column, ...).
    """
    vec = _validate(store, query)
    where = _filter_sql(query)
    if query.text is not None:
        if embedder is None:
            from engine.store.text_embed import get_text_embedder

            embedder = get_text_embedder()
        qvec = np.asarray(embedder.embed([query.text])[0], dtype=np.float32)
        if qvec.shape != (store.config.text_emb_dim,):
            raise QueryError("embedder", f"returned shape {qvec.shape}, text_emb needs "
                                         f"({store.config.text_emb_dim},)")
        semantic = _vector_leg(store, "text_emb", qvec, where, query.k)
        keyword = _fts_leg(store, query.text, where, query.k)
        return _fuse(semantic, keyword, query.k)
    if vec is not None:
        table = _vector_leg(store, query.vector_column, vec, where, query.k)
        return [_hit(rec, 1.0 - rec["_distance"], query.vector_column)
                for rec in table.to_pylist()]
    table = store.table.search().where(where).select(_HIT_COLUMNS).to_arrow()
    # Every matching row is read (five small columns) so the *earliest* k are returned, not
    # whichever k the scan meets first.
    table = table.sort_by([("t_start_us", "ascending"), ("stream_id", "ascending"),
                           ("segment_index", "ascending")]).slice(0, query.k)
    return [_hit(rec, 0.0, RETRIEVAL_TIME) for rec in table.to_pylist()]
