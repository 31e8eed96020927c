"""The training step as a write statement (README "Lookup and training"):
INSERT INTO t(t, id, vector, lr) VALUES ('step', ids, grads, lr) is
embed_update(ids, grads, lr), bit for bit, and behaves as a write for the
tools that route statements by sqlite3_stmt_readonly().
"""
import sqlite3

import numpy as np
import pytest
import torch

from conftest import EXT, to_blob

STEP = "INSERT INTO {t}({t}, id, vector, lr) VALUES ('step', ?, ?, ?)"


def legacy_connect(path, uri=False):
    """Python's default (legacy) transaction handling."""
    conn = sqlite3.connect(path, uri=uri)
    conn.enable_load_extension(True)
    conn.load_extension(EXT)
    return conn


@pytest.mark.parametrize("options", [
    "optimizer=sgd", "optimizer=sgd, momentum=0.9", "optimizer=adagrad",
    "optimizer=adam", "optimizer=sgd, padding_idx=0, scale_grad_by_freq=1"])
def test_step_equals_embed_update_and_torch(tmp_path, options):
    conn = legacy_connect(str(tmp_path / "s.db"))
    for t in ("a", "b"):
        conn.execute(f"CREATE VIRTUAL TABLE {t} USING embedding(dim=4, "
                     f"num_embeddings=20, seed=3, {options})")
    rng = np.random.default_rng(1)
    for _ in range(6):
        ids = rng.integers(0, 20, size=7).tolist()
        grads = rng.standard_normal((7, 4)).astype(np.float32)
        conn.execute(STEP.format(t="a"), (str(ids), to_blob(grads), 0.05))
        conn.execute("SELECT embed_update('b', ?, ?, 0.05)",
                     (str(ids), to_blob(grads)))
    conn.commit()
    a = conn.execute("SELECT id, vector FROM a ORDER BY id").fetchall()
    b = conn.execute("SELECT id, vector FROM b ORDER BY id").fetchall()
    assert a == b, "the write form and embed_update differ"
    sa = conn.execute("SELECT id, state FROM a_state ORDER BY id").fetchall()
    sb = conn.execute("SELECT id, state FROM b_state ORDER BY id").fetchall()
    assert sa == sb
    conn.close()


def test_step_matches_torch_sparse_adam(tmp_path):
    conn = legacy_connect(str(tmp_path / "t.db"))
    conn.execute("CREATE VIRTUAL TABLE a USING embedding(dim=3, "
                 "num_embeddings=6, seed=5, optimizer=adam)")
    w0 = np.frombuffer(b"".join(r[0] for r in conn.execute(
        "SELECT vector FROM a ORDER BY id")), dtype="<f4").reshape(6, 3)
    emb = torch.nn.Embedding(6, 3, sparse=True)
    emb.weight.data = torch.tensor(w0.copy())
    opt = torch.optim.SparseAdam(emb.parameters(), lr=0.01)
    rng = np.random.default_rng(2)
    for _ in range(5):
        ids = rng.integers(0, 6, size=4)
        g = rng.standard_normal((4, 3)).astype(np.float32)
        conn.execute(STEP.format(t="a"), (str(ids.tolist()), to_blob(g), 0.01))
        opt.zero_grad()
        out = emb(torch.tensor(ids))
        out.backward(torch.tensor(g))
        opt.step()
    conn.commit()
    got = np.frombuffer(b"".join(r[0] for r in conn.execute(
        "SELECT vector FROM a ORDER BY id")), dtype="<f4").reshape(6, 3)
    assert np.array_equal(got, emb.weight.detach().numpy()), "not bit-exact"


def test_python_implicit_transactions_hold_the_steps(tmp_path):
    path = str(tmp_path / "p.db")
    conn = legacy_connect(path)
    conn.execute("CREATE VIRTUAL TABLE a USING embedding(dim=2, "
                 "num_embeddings=3, seed=1)")
    conn.commit()
    before = conn.execute("SELECT vector FROM a ORDER BY id").fetchall()
    for _ in range(3):
        conn.execute(STEP.format(t="a"), ("[0, 1]", "[[1, 1], [2, 2]]", 0.5))
    assert conn.in_transaction, "Python opened its implicit transaction"
    other = legacy_connect(path)
    assert other.execute("SELECT vector FROM a ORDER BY id").fetchall() == \
        before, "uncommitted steps are not seen by others"
    conn.rollback()
    assert conn.execute("SELECT vector FROM a ORDER BY id").fetchall() == before
    for _ in range(3):
        conn.execute(STEP.format(t="a"), ("[0, 1]", "[[1, 1], [2, 2]]", 0.5))
    conn.commit()
    after = other.execute("SELECT vector FROM a ORDER BY id").fetchall()
    assert after != before and after[2] == before[2]
    other.close()
    conn.close()


def test_a_read_only_connection_refuses_the_step(tmp_path):
    path = str(tmp_path / "r.db")
    conn = legacy_connect(path)
    conn.execute("CREATE VIRTUAL TABLE a USING embedding(dim=2, "
                 "num_embeddings=2, seed=1)")
    conn.commit()
    conn.close()
    ro = legacy_connect(f"file:{path}?mode=ro", uri=True)
    before = ro.execute("SELECT vector FROM a").fetchall()
    with pytest.raises(sqlite3.OperationalError,
                       match="attempt to write a readonly database"):
        ro.execute(STEP.format(t="a"), (1, "[1, 1]", 0.5))
    assert ro.execute("SELECT vector FROM a").fetchall() == before
    ro.close()


@pytest.mark.parametrize("sql, args, message", [
    (STEP.format(t="a"), (1, "[1, 1]", None),
     "embedding a: lr must be a number, got NULL"),
    (STEP.format(t="a"), (1, None, 0.1), "embedding a: gradient is NULL"),
    (STEP.format(t="a"), (9, "[1, 1]", 0.1), "embedding a: no id 9 in embedding a"),
    (STEP.format(t="a"), ("[0, 1]", "[[1, 1]]", 0.1),
     "embedding a: gradients are 1 x 2, expected 2 ids x 2"),
    ("INSERT INTO a(a, id, vector, k) VALUES ('step', 1, '[1, 1]', 3)", (),
     "embedding a: the step command takes no k"),
    ("INSERT INTO a(id, vector, lr) VALUES (5, '[1, 1]', 0.1)", (),
     "embedding a: lr is an argument of the step command: INSERT INTO "
     "a(a, id, vector, lr) VALUES ('step', ids, grads, lr)"),
])
def test_step_errors_change_nothing(tmp_path, sql, args, message):
    conn = legacy_connect(str(tmp_path / "e.db"))
    conn.execute("CREATE VIRTUAL TABLE a USING embedding(dim=2, "
                 "num_embeddings=2, seed=1, optimizer=adam)")
    conn.commit()
    before = conn.execute("SELECT * FROM a_vectors UNION ALL SELECT "
                          "key, value FROM a_config").fetchall()
    with pytest.raises(sqlite3.OperationalError) as e:
        conn.execute(sql, args)
    assert str(e.value) == message
    conn.commit()
    assert conn.execute("SELECT * FROM a_vectors UNION ALL SELECT "
                        "key, value FROM a_config").fetchall() == before
    conn.close()
