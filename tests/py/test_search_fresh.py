"""Similarity search is always fresh: another connection's commits (WAL) are
seen by the next search, uncommitted rows of another connection are not,
and both the in-memory snapshot and the table scan give the same answers as
a float64 brute force."""
import sqlite3

import numpy as np

from conftest import EXT


def open_db(path):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.enable_load_extension(True)
    conn.load_extension(EXT)
    return conn


def knn(conn, table, q, k):
    return [r[0] for r in conn.execute(
        f"SELECT id FROM {table} WHERE vector MATCH ? AND k = ?",
        (q.astype(np.float32).tobytes(), k))]


def test_other_connections_commits_are_seen(tmp_path):
    path = str(tmp_path / "db")
    a, b = open_db(path), open_db(path)
    a.execute("PRAGMA journal_mode=WAL")
    a.execute("CREATE VIRTUAL TABLE t USING embedding(dim=3, metric=l2)")
    a.execute("INSERT INTO t(id, vector) VALUES (1, '[0,0,0]'), (2, '[5,5,5]')")
    q = np.array([9, 9, 9], dtype=np.float32)
    assert knn(b, "t", q, 1) == [2]          # builds b's snapshot
    a.execute("BEGIN")
    a.execute("INSERT INTO t(id, vector) VALUES (3, '[9,9,9]')")
    assert knn(b, "t", q, 1) == [2]          # a's row is not committed yet
    assert knn(a, "t", q, 1) == [3]          # but a sees its own row
    a.execute("COMMIT")
    assert knn(b, "t", q, 1) == [3]          # b's snapshot is rebuilt
    a.execute("SELECT embed_update('t', 3, '[100,100,100]', 1)").fetchone()
    assert knn(b, "t", q, 1) == [2]
    a.execute("DELETE FROM t WHERE id = 2")
    assert knn(b, "t", q, 1) == [1]


def test_snapshot_and_scan_agree_with_brute_force(tmp_path):
    rng = np.random.default_rng(7)
    n, d = 500, 16
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[10] = 0                                   # a zero vector
    x[11] = x[12]                               # an exact tie
    conn = open_db(str(tmp_path / "db"))
    conn.execute("PRAGMA synchronous=OFF")
    for metric in ("cosine", "l2", "dot"):
        for cache in (1, 0):
            name = f"{metric}_{cache}"
            conn.execute(f"CREATE VIRTUAL TABLE {name} USING embedding("
                         f"dim={d}, metric={metric}, search_cache={cache})")
            conn.executemany(f"INSERT INTO {name}(id, vector) VALUES (?, ?)",
                             [(i, x[i].tobytes()) for i in range(n)])
        for _ in range(5):
            q = rng.standard_normal(d).astype(np.float32)
            xd, qd = x.astype(np.float64), q.astype(np.float64)
            if metric == "cosine":
                norms = np.maximum(np.linalg.norm(xd, axis=1), 1e-8)
                dist = 1 - xd @ qd / (norms * max(np.linalg.norm(qd), 1e-8))
            elif metric == "l2":
                dist = np.linalg.norm(xd - qd, axis=1)
            else:
                dist = -(xd @ qd)
            want = sorted(range(n), key=lambda i: (round(dist[i], 9), i))[:20]
            for cache in (1, 0):
                got = conn.execute(
                    f"SELECT id, distance FROM {metric}_{cache} "
                    "WHERE vector MATCH ? AND k = 20", (q.tobytes(),)).fetchall()
                assert [r[0] for r in got] == want, (metric, cache)
                assert np.allclose([r[1] for r in got], dist[want], rtol=1e-9, atol=1e-9)
