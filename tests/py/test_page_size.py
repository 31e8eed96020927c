"""Training, search and rollback on databases of other page sizes (README
"Training speed: commits, checkpoints and page size").

SQLite's page size changes where a row sits: at 512 bytes a 160-float
vector (640 bytes) no longer fits its leaf page and continues on an
overflow page, so every blob read and write of a step crosses pages; at
64 KB a leaf holds about a hundred rows. The table must give the same
answers in each: the steps equal torch's (sparse nn.Embedding with SGD,
Adagrad and SparseAdam, same tolerance as test_oracle.py), a failed step
changes nothing, ROLLBACK restores every row and state, the integrity
check passes, and a search finds what a brute-force scan finds.
"""
import json
import sqlite3

import numpy as np
import pytest
import torch

from conftest import connect, one, rows, to_blob

torch.set_num_threads(1)

N, D, BATCH, STEPS, LR = 3000, 160, 96, 12, 0.05
STEP = "INSERT INTO t(t, id, vector, lr) VALUES ('step', ?, ?, ?)"
OPTIMIZERS = {
    "sgd": ("optimizer=sgd", torch.optim.SGD),
    "adagrad": ("optimizer=adagrad", torch.optim.Adagrad),
    "adam": ("optimizer=adam", torch.optim.SparseAdam),
}


def open_db(tmp_path, where, page_size):
    """A new database of `page_size`-byte pages: a WAL file, or memory."""
    conn = connect(":memory:" if where == "memory"
                   else str(tmp_path / "p.db"))
    conn.execute(f"PRAGMA page_size={page_size}")
    if where == "file":
        assert one(conn, "PRAGMA journal_mode=WAL") == "wal"
    return conn


def weights(conn):
    got = rows(conn, "t")
    assert sorted(got) == list(range(N))
    return np.stack([got[i] for i in range(N)])


def snapshot(conn):
    return (weights(conn).tobytes(),
            conn.execute("SELECT id, state FROM t_state ORDER BY id").fetchall(),
            one(conn, "SELECT value FROM t_config WHERE key = 'step'"))


def batch(rng):
    ids = [int(i) for i in rng.integers(0, N, BATCH)]
    ids += ids[:5]                                # repeated ids, coalesced
    return ids, rng.standard_normal((len(ids), D)).astype(np.float32)


@pytest.mark.parametrize("where, page_size", [
    ("file", 512), ("file", 4096), ("file", 65536), ("memory", 65536)])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_steps_search_and_rollback_at_a_page_size(tmp_path, rng, where,
                                                   page_size, name):
    option, opt_class = OPTIMIZERS[name]
    conn = open_db(tmp_path, where, page_size)
    conn.execute(f"CREATE VIRTUAL TABLE t USING embedding(num_embeddings={N},"
                 f" dim={D}, seed=3, {option})")
    assert one(conn, "PRAGMA page_size") == page_size
    W = weights(conn)
    emb = torch.nn.Embedding.from_pretrained(torch.tensor(W), freeze=False,
                                             sparse=True)
    opt = opt_class(emb.parameters(), lr=LR)

    conn.execute("BEGIN")
    for _ in range(STEPS):
        ids, G = batch(rng)
        conn.execute(STEP, (json.dumps(ids), to_blob(G), LR))
        opt.zero_grad()
        (emb(torch.tensor(ids)) * torch.tensor(G)).sum().backward()
        opt.step()
    conn.execute("COMMIT")
    np.testing.assert_allclose(weights(conn), emb.weight.detach().numpy(),
                               rtol=1e-6, atol=1e-6)

    # a step whose last row's result overflows (found after the rows
    # before it were computed) changes no row
    before = snapshot(conn)
    ids, G = batch(rng)
    last = max(set(ids))
    G[[i for i, x in enumerate(ids) if x == last], 0] = 1e30
    with pytest.raises(sqlite3.OperationalError, match="not finite") as e:
        conn.execute(STEP, (json.dumps(ids), to_blob(G), 1e10))
    assert f"id {last}" in str(e.value)
    assert snapshot(conn) == before

    # steps and an optimizer reset inside a transaction, rolled back
    conn.execute("BEGIN")
    for _ in range(3):
        ids, G = batch(rng)
        conn.execute(STEP, (json.dumps(ids), to_blob(G), LR))
    conn.execute("INSERT INTO t(t) VALUES ('reset-optimizer')")
    assert snapshot(conn) != before
    conn.execute("ROLLBACK")
    assert snapshot(conn) == before

    conn.execute("INSERT INTO t(t) VALUES ('integrity-check')")

    # exact search against a brute-force cosine over the trained rows
    Wt = weights(conn)
    norms = np.linalg.norm(Wt.astype(np.float64), axis=1)
    for q in rng.standard_normal((3, D)).astype(np.float32):
        got = [i for (i,) in conn.execute(
            "SELECT id FROM t WHERE vector MATCH ? AND k = 10 ORDER BY "
            "distance", (to_blob(q),))]
        cos = Wt.astype(np.float64) @ q.astype(np.float64) / (
            norms * np.linalg.norm(q.astype(np.float64)))
        assert got == [int(i) for i in np.argsort(-cos, kind="stable")[:10]]
    conn.close()
