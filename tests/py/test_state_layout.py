"""Where a table keeps its optimizer state (README: Storage, Optimizers).

Adagrad and Adam tables made now (layout 3) store each row's state after
its weight in T_vectors, written with the initial state at the row's
insert; SGD tables with momentum (layout 4) store the buffer there too,
zeros from the insert, and T_state holds an empty mark for each row that
has a buffer (torch's sparse buffer covers only the rows it has stepped,
and every step moves them all); plain SGD tables keep layout 2, with no
state. Tables of layout 2 made by earlier releases keep their states as
T_state's rows and are read and trained through T_state as before. This
suite checks the stored form of both, and that the layouts train to the
same bits: a layout-2 table is made here from a fresh layout-3 or 4 one
with plain SQL (its rows cut to the weight, its layout row set to 2), the
form earlier releases wrote. torch equality of the new layouts' path is
test_oracle.py's.

    EMBED_EXT=$PWD/embed /usr/bin/python3 -m pytest -q tests/py/test_state_layout.py
"""
import json
import sqlite3

import numpy as np
import pytest

from conftest import as_layout_2, connect, from_blob, one, to_blob

D = 5
N = 12


def create(conn, name, options):
    conn.execute(f"CREATE VIRTUAL TABLE {name} USING embedding(dim={D}, "
                 f"num_embeddings={N}, seed=7, {options})")


def layout(conn, name):
    return int(one(conn, f"SELECT value FROM {name}_config WHERE key = 'layout'"))


def states(conn, name):
    return [one(conn, f"SELECT embed_optimizer_state('{name}', ?)", i)
            for i in range(N)]


@pytest.mark.parametrize("options, state_floats, want_layout", [
    ("optimizer=adagrad", D, 3),
    ("optimizer=adagrad, initial_accumulator_value=0.25", D, 3),
    ("optimizer=adam", 2 * D, 3),
    ("optimizer=sgd", 0, 2),
    ("optimizer=sgd, momentum=0.9", D, 4),
])
def test_stored_form_of_a_new_table(db, options, state_floats, want_layout):
    create(db, "t", options)
    db.execute("INSERT INTO t(id) VALUES (100)")               # one by one
    db.execute(f"INSERT INTO t(id, vector) VALUES (101, '{json.dumps([1.5] * D)}')")
    assert layout(db, "t") == want_layout
    lengths = {n for (n,) in db.execute("SELECT length(vector) FROM t_vectors")}
    assert lengths == {4 * (D + state_floats)}
    # the virtual table's column, lookups and searches give the weight alone
    assert {len(v) for (v,) in db.execute("SELECT vector FROM t")} == {4 * D}
    assert len(one(db, "SELECT embed_lookup('t', 101)")) == 4 * D
    assert from_blob(one(db, "SELECT vector FROM t WHERE id = 101")).tolist() == [1.5] * D
    hit = db.execute("SELECT id, length(vector) FROM t WHERE vector MATCH ? "
                     "AND k = 1", (json.dumps([1.5] * D),)).fetchall()
    assert hit == [(101, 4 * D)]
    assert one(db, "SELECT count(*) FROM t_state") == 0
    if "momentum" in options:  # zeros in the row, but no buffer yet
        assert one(db, "SELECT embed_optimizer_state('t', 100)") is None
        assert one(db, "SELECT substr(vector, ?) FROM t_vectors WHERE id = 100",
                   4 * D + 1) == bytes(4 * state_floats)
    elif state_floats:
        init = 0.25 if "initial" in options else 0.0
        assert one(db, "SELECT embed_optimizer_state('t', 100)") == \
            to_blob(np.full(state_floats, init))
    db.execute("INSERT INTO t(t) VALUES ('integrity-check')")


def train(conn, name, rng, steps):
    for _ in range(steps):
        ids = [int(i) for i in rng.integers(0, N, 8)]          # repeats too
        grads = rng.standard_normal((len(ids), D)).astype(np.float32)
        conn.execute(f"INSERT INTO {name}({name}, id, vector, lr) "
                     "VALUES ('step', ?, ?, ?)",
                     (json.dumps(ids), to_blob(grads), 0.05))


@pytest.mark.parametrize("options", [
    "optimizer=adagrad, lr_decay=0.01, initial_accumulator_value=0.1",
    "optimizer=adam, betas=(0.8, 0.99)",
    "optimizer=adam, max_norm=1.5, padding_idx=3, scale_grad_by_freq=1",
    "optimizer=sgd, momentum=0.9, dampening=0.1",
    "optimizer=sgd, momentum=0.8, nesterov=1, padding_idx=2",
    "optimizer=sgd, momentum=0.9, weight_decay=0.01, maximize=1",
])
def test_layout_2_and_the_new_layouts_train_to_the_same_bits(db_path, options):
    momentum = "momentum" in options
    conn = connect(db_path)
    create(conn, "a", options)          # layout 3, or 4 for momentum
    create(conn, "b", options)
    conn.close()
    as_layout_2(db_path, "b", D)
    conn = connect(db_path)
    assert (layout(conn, "a"), layout(conn, "b")) == (4 if momentum else 3, 2)
    # the same batches on both, one step per statement, then a batch that
    # fails late and changes nothing; first steps, then steps past the
    # first epoch (the states mostly stored)
    for seed in (1, 2):
        for name in "ab":
            train(conn, name, np.random.default_rng(seed), 6)
        assert conn.execute("SELECT id, vector FROM a").fetchall() == \
            conn.execute("SELECT id, vector FROM b").fetchall()
        assert states(conn, "a") == states(conn, "b")
    for name in "ab":
        with pytest.raises(sqlite3.DatabaseError) as e:
            conn.execute(f"SELECT embed_update('{name}', '[0, 1, 99]', ?, 0.1)",
                         (to_blob(np.ones((3, D))),))
        assert "no id 99" in str(e.value)
    assert states(conn, "a") == states(conn, "b")
    stepped = one(conn, "SELECT count(*) FROM b_state")
    # a_state: momentum's marks of the rows with a buffer, or nothing
    assert stepped > 0 and one(conn, "SELECT count(*) FROM a_state") == \
        (stepped if momentum else 0)
    if momentum:
        assert conn.execute("SELECT id FROM a_state").fetchall() == \
            conn.execute("SELECT id FROM b_state").fetchall()
        assert one(conn, "SELECT count(*) FROM a_state WHERE state != x''") == 0
    # where each keeps it: a's in its rows, b's in b_state
    assert one(conn, "SELECT count(*) FROM a_vectors WHERE length(vector) > ?",
               4 * D) == N
    assert one(conn, "SELECT max(length(vector)) FROM b_vectors") == 4 * D
    for name in "ab":
        conn.execute(f"INSERT INTO {name}({name}) VALUES ('integrity-check')")
    # a reset counts the same rows: those with a stored (a: a non-initial) state
    assert one(conn, "SELECT embed_optimizer_reset('a')") == stepped
    assert one(conn, "SELECT embed_optimizer_reset('b')") == stepped
    assert states(conn, "a") == states(conn, "b")
    train(conn, "a", np.random.default_rng(3), 3)
    train(conn, "b", np.random.default_rng(3), 3)
    assert conn.execute("SELECT vector FROM a").fetchall() == \
        conn.execute("SELECT vector FROM b").fetchall()


@pytest.mark.parametrize("options", ["optimizer=adam",
                                     "optimizer=sgd, momentum=0.9"])
def test_row_writes_keep_move_and_reset_the_state(db, options):
    """UPDATE SET vector keeps the row's state, UPDATE SET id moves it,
    INSERT OR REPLACE starts it afresh, DELETE removes it: the same in both
    layouts."""
    create(db, "t", options)
    db.execute("SELECT embed_update('t', '[1, 2, 4]', ?, 0.1)",
               (to_blob(np.arange(3 * D).reshape(3, D) + 1.0),)).fetchall()
    before = states(db, "t")
    assert before[1] is not None and any(before[1])
    db.execute(f"UPDATE t SET vector = '{json.dumps([0.5] * D)}' WHERE id = 1")
    assert one(db, "SELECT embed_optimizer_state('t', 1)") == before[1]
    assert from_blob(one(db, "SELECT vector FROM t WHERE id = 1")).tolist() == [0.5] * D
    db.execute("UPDATE t SET id = 50 WHERE id = 2")
    assert one(db, "SELECT embed_optimizer_state('t', 50)") == before[2]
    db.execute(f"INSERT OR REPLACE INTO t(id, vector) VALUES (4, '{json.dumps([1] * D)}')")
    fresh = one(db, "SELECT embed_optimizer_state('t', 0)")   # never stepped
    assert one(db, "SELECT embed_optimizer_state('t', 4)") == fresh
    db.execute("DELETE FROM t WHERE id = 50")
    with pytest.raises(sqlite3.OperationalError) as e:
        one(db, "SELECT embed_optimizer_state('t', 50)")
    assert str(e.value) == "embed_optimizer_state: no id 50 in embedding t"
    assert one(db, "SELECT count(*) FROM t_state WHERE id = 50") == 0
    db.execute("INSERT INTO t(t) VALUES ('integrity-check')")


def test_optimizer_state_function(db):
    create(db, "s", "optimizer=sgd")
    create(db, "m", "optimizer=sgd, momentum=0.9")
    create(db, "g", "optimizer=adagrad, initial_accumulator_value=0.5")
    assert one(db, "SELECT embed_optimizer_state('s', 1)") is None
    assert one(db, "SELECT embed_optimizer_state('m', 1)") is None  # no buffer yet
    assert one(db, "SELECT embed_optimizer_state('g', 1)") == to_blob(np.full(D, 0.5))
    db.execute("SELECT embed_update('m', 1, ?, 0.1)", (to_blob(np.ones(D)),)).fetchall()
    assert one(db, "SELECT embed_optimizer_state('m', 1)") == to_blob(np.ones(D))
    assert one(db, "SELECT embed_optimizer_state('g', NULL)") is None
    for sql, message in [
        ("SELECT embed_optimizer_state('g', 99)",
         "embed_optimizer_state: no id 99 in embedding g"),
        ("SELECT embed_optimizer_state('s', 99)",
         "embed_optimizer_state: no id 99 in embedding s"),
        ("SELECT embed_optimizer_state('g', '[1, 2]')",
         "embed_optimizer_state: id must be one integer"),
        ("SELECT embed_optimizer_state(1)",
         "embed_optimizer_state: 3 embedding tables (g, m, s); name one "
         "as the first argument"),
    ]:
        with pytest.raises(sqlite3.Error) as e:
            db.execute(sql).fetchall()
        assert str(e.value) == message, sql


def test_bulk_insert_writes_the_initial_state(db_path):
    """The insert buffer's multi-row INSERTs store each row with its
    initial state, in a file inside BEGIN and in autocommit."""
    conn = connect(db_path)
    create(conn, "t", "optimizer=adam")
    conn.execute("CREATE TABLE src(id INTEGER PRIMARY KEY, v BLOB)")
    rng = np.random.default_rng(5)
    conn.executemany("INSERT INTO src VALUES (?, ?)",
                     [(1000 + i, to_blob(rng.standard_normal(D)))
                      for i in range(2000)])
    conn.execute("INSERT INTO t(id, vector) SELECT id, v FROM src WHERE id < 2000")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO t(id, vector) SELECT id, v FROM src WHERE id >= 2000")
    conn.execute("COMMIT")
    assert conn.execute("SELECT id, vector FROM t WHERE id >= 1000").fetchall() == \
        conn.execute("SELECT id, v FROM src").fetchall()
    assert one(conn, "SELECT count(*) FROM t_vectors WHERE length(vector) = ? "
               "AND substr(vector, ?) = zeroblob(?)", 12 * D, 4 * D + 1,
               8 * D) == N + 2000
    conn.execute("INSERT INTO t(t) VALUES ('integrity-check')")
