"""Approximate search with index=ivf (README "Approximate search"): the
options, build-index, recall against a float64 brute force on clustered
data, exact distances, filters, every write kind found at its new place by
the next search, transactions, two connections, integrity-check.

    EMBED_EXT=$PWD/embed /usr/bin/python3 -m pytest -q tests/py/test_ivf.py

The randomised interleavings on an index=ivf table are in
test_live_search.py (they probe every cell, so the answer must be exact).
"""
import numpy as np
import pytest

from conftest import connect, error_of, one, to_blob

DIM = 32


def clustered(rng, n, dim=DIM, centres=60, spread=0.35):
    """Unit vectors around `centres` random centres of random sizes, with
    a per-dimension spread that decays (neighbours are not equidistant)."""
    c = rng.standard_normal((centres, dim))
    weights = rng.dirichlet(np.ones(centres))
    which = rng.choice(centres, size=n, p=weights)
    decay = 1.0 / np.sqrt(1.0 + np.arange(dim) / 8.0)
    x = c[which] + spread * rng.standard_normal((n, dim)) * decay
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def cosine_brute(x, q, k):
    """(distance, id) of the k nearest rows by 1 - cosine, float64."""
    x64 = x.astype(np.float64)
    q64 = q.astype(np.float64)
    d = 1.0 - x64 @ q64 / (np.linalg.norm(x64, axis=1) * np.linalg.norm(q64))
    order = np.lexsort((np.arange(len(x)), d))[:k]
    return [(float(d[i]), int(i)) for i in order]


def make_table(conn, x, options="", name="tok"):
    conn.execute(f"CREATE VIRTUAL TABLE {name} USING embedding(dim={DIM}, "
                 f"index=ivf, seed=5{options})")
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO {name}(id, vector) VALUES (?, ?)",
                     ((i, x[i].tobytes()) for i in range(len(x))))
    conn.execute("COMMIT")


def indexed_table(x):
    """A `:memory:` connection with tok (index=ivf) holding x, built."""
    conn = connect()
    make_table(conn, x)
    conn.execute("INSERT INTO tok(tok) VALUES ('build-index')")
    return conn


def knn(conn, q, k=10, extra="", name="tok"):
    return conn.execute(
        f"SELECT id, distance FROM {name} WHERE vector MATCH ? AND k = ?"
        + extra, (to_blob(q), k)).fetchall()


@pytest.fixture
def data():
    rng = np.random.default_rng(42)
    x = clustered(rng, 4000)
    queries = clustered(np.random.default_rng(7), 40)
    return x, queries


# ------------------------------------------------------------------ options


def test_options_are_checked_and_stored(tmp_path):
    # the malformed ones are in test_errors.py (BAD_OPTIONS)
    path = str(tmp_path / "opt.db")
    c = connect(path)
    c.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=4, index=ivf, "
              "nlist=3, nprobe=2, oversample=5)")
    c.close()
    c = connect(path)
    stored = dict(c.execute("SELECT key, value FROM tok_config WHERE key IN "
                            "('index', 'nlist', 'nprobe', 'oversample')"))
    assert stored == {"index": "ivf", "nlist": "3", "nprobe": "2",
                      "oversample": "5"}
    assert c.execute("SELECT name FROM sqlite_schema WHERE name = "
                     "'tok_cells'").fetchall() == [("tok_cells",)]
    # a table without an index has no cells table and no index options
    c.execute("CREATE VIRTUAL TABLE plain USING embedding(dim=4)")
    assert one(c, "SELECT count(*) FROM sqlite_schema WHERE name = "
               "'plain_cells'") == 0
    assert one(c, "SELECT count(*) FROM plain_config WHERE key = 'nlist'") == 0


def test_build_index_errors():
    conn = connect()
    conn.execute("CREATE VIRTUAL TABLE plain USING embedding(dim=4)")
    assert error_of(conn, "INSERT INTO plain(plain) VALUES ('build-index')") \
        == "embedding plain: build-index needs a table made with index=ivf"
    conn.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=4, index=ivf)")
    assert error_of(conn, "INSERT INTO tok(tok) VALUES ('build-index')") \
        == "embedding tok: build-index needs rows to train on"
    assert error_of(conn, "INSERT INTO tok(tok, id) VALUES ('build-index', 1)") \
        == "embedding tok: the build-index command takes no id"
    assert error_of(conn, "INSERT INTO tok(id, vector, nprobe) VALUES "
                    "(1, '[1,2,3,4]', 3)") \
        == "embedding tok: nprobe is a search column and cannot be written"
    assert one(conn, "SELECT count(*) FROM tok") == 0
    conn.execute("INSERT INTO tok(id, vector) VALUES (1, '[1,2,3,4]')")
    for bad in ["-1", "'x'", "1.5"]:
        assert error_of(conn, "SELECT id FROM tok WHERE vector MATCH "
                        f"'[1,2,3,4]' AND k = 1 AND nprobe = {bad}").startswith(
            "embedding tok: nprobe must be an integer in [0, 1048576], got ")


# ------------------------------------------------------------------- recall


def recall(conn, x, queries, extra="", k=10):
    hits = 0
    for q in queries:
        want = {i for _, i in cosine_brute(x, q, k)}
        got = knn(conn, q, k, extra)
        assert len(got) == k
        hits += len(want & {i for i, _ in got})
    return hits / (k * len(queries))


def test_recall_rises_with_nprobe_and_distances_are_exact(data):
    x, queries = data
    conn = connect()
    make_table(conn, x)
    before = recall(conn, x, queries)
    assert before == 1.0, "until build-index the search is exact"
    conn.execute("INSERT INTO tok(tok) VALUES ('build-index')")
    nlist = one(conn, "SELECT count(*) FROM tok_cells WHERE cell >= 0")
    assert nlist == round(2 * len(x) ** 0.5)
    listed = one(conn, "SELECT sum(length(ids)) / 8 FROM tok_cells")
    assert listed == len(x), "every row is in one cell"
    r = {p: recall(conn, x, queries, f" AND nprobe = {p}")
         for p in (1, 4, 16, nlist)}
    default = recall(conn, x, queries)
    assert r[1] < 1.0, "one cell is approximate: the index is used"
    assert r[1] <= r[4] <= r[16] <= r[nlist], r
    assert default >= 0.97, (default, r)
    assert r[nlist] >= 0.99, r
    assert recall(conn, x, queries, " AND nprobe = 0") == 1.0, \
        "nprobe = 0 is an exact search"
    for q in queries[:10]:
        for i, d in knn(conn, q, 10, " AND nprobe = 2"):
            exact = cosine_brute(x[i:i + 1], q, 1)[0][0]
            assert abs(d - exact) <= 1e-6, (i, d, exact)


def test_filters_still_return_k_rows(data):
    x, queries = data
    conn = indexed_table(x)
    q = queries[0]
    got = conn.execute("SELECT id, distance FROM tok WHERE vector MATCH ? "
                       "AND k = 10 AND nprobe = 1 AND id BETWEEN 100 AND 140",
                       (to_blob(q),)).fetchall()
    assert len(got) == 10 and all(100 <= i <= 140 for i, _ in got)
    want = cosine_brute(x[100:141], q, 41)
    exact = {i + 100: d for d, i in want}
    assert all(abs(d - exact[i]) <= 1e-6 for i, d in got)
    ids = [5, 17, 900, 3999, 123456]
    got = conn.execute("SELECT id FROM tok WHERE vector MATCH ? AND k = 3 "
                       f"AND id IN ({','.join(map(str, ids))})",
                       (to_blob(q),)).fetchall()
    sub = x[[5, 17, 900, 3999]]
    assert [i for i, in got] == [[5, 17, 900, 3999][j]
                                 for _, j in cosine_brute(sub, q, 3)]


# ------------------------------------------------------------------- writes


def test_every_write_is_found_at_its_new_place(data):
    x, queries = data
    conn = indexed_table(x)
    q = queries[3]
    far = -q
    # the default probe: a moved row is assigned by the two nearest groups
    # of cells, so it may sit in the second or third nearest cell
    top1 = lambda: knn(conn, q, 1)[0]  # noqa: E731
    # UPDATE a far row onto the query
    victim = cosine_brute(x, far, 1)[0][1]
    conn.execute("UPDATE tok SET vector = ? WHERE id = ?", (to_blob(q), victim))
    assert top1()[0] == victim and abs(top1()[1]) < 1e-6
    # INSERT a new row even nearer (the same direction is distance 0 too:
    # ties go to the smaller id, so give the new row a smaller id)
    conn.execute("DELETE FROM tok WHERE id = 0")
    conn.execute("INSERT INTO tok(id, vector) VALUES (0, ?)", (to_blob(q),))
    assert top1() == (0, pytest.approx(0.0, abs=1e-6))
    # DELETE it: the updated row is first again
    conn.execute("DELETE FROM tok WHERE id = 0")
    assert top1()[0] == victim
    # a training step moves a row onto the query
    mover = cosine_brute(x, far, 2)[1][1]
    row = np.frombuffer(one(conn, "SELECT vector FROM tok WHERE id = ?", mover),
                        dtype="<f4")
    conn.execute("INSERT INTO tok(tok, id, vector, lr) VALUES ('step', ?, ?, 1.0)",
                 (f"[{mover}]", to_blob(row - 2 * q)))
    assert {i for i, _ in knn(conn, q, 2, )} == {victim, mover}
    # the same, inside a transaction, then rolled back
    conn.execute("BEGIN")
    conn.execute("UPDATE tok SET vector = ? WHERE id = ?", (to_blob(far), victim))
    conn.execute("SAVEPOINT s")
    conn.execute("UPDATE tok SET vector = ? WHERE id = ?", (to_blob(far), mover))
    assert victim not in {i for i, _ in knn(conn, q, 5)}
    assert mover not in {i for i, _ in knn(conn, q, 5)}
    conn.execute("ROLLBACK TO s")
    assert mover in {i for i, _ in knn(conn, q, 5)}
    conn.execute("ROLLBACK")
    assert {i for i, _ in knn(conn, q, 2, )} == {victim, mover}
    conn.execute("INSERT INTO tok(tok) VALUES ('integrity-check')")


def test_two_connections_see_each_others_commits(tmp_path, data):
    x, queries = data
    path = str(tmp_path / "two.db")
    a = connect(path)
    a.execute("PRAGMA journal_mode=wal")
    make_table(a, x)
    a.execute("INSERT INTO tok(tok) VALUES ('build-index')")
    b = connect(path)
    q = queries[5]
    assert knn(a, q) == knn(b, q)
    victim = cosine_brute(x, -q, 1)[0][1]
    b.execute("BEGIN")
    b.execute("UPDATE tok SET vector = ? WHERE id = ?", (to_blob(q), victim))
    assert knn(b, q, 1)[0][0] == victim
    assert knn(a, q, 1)[0][0] != victim, "uncommitted rows stay private"
    # an old snapshot on a keeps its view while b commits
    a.execute("BEGIN")
    old = knn(a, q, 3)
    b.execute("COMMIT")
    assert knn(a, q, 3) == old
    a.execute("COMMIT")
    assert knn(a, q, 1)[0][0] == victim
    # a rebuild by b is seen by a
    b.execute("INSERT INTO tok(tok) VALUES ('build-index')")
    assert knn(a, q, 1)[0][0] == victim
    a.execute("INSERT INTO tok(tok) VALUES ('integrity-check')")
    a.close()
    b.close()


def test_training_every_row_keeps_recall(data):
    """Random steps that move every row by about its neighbour distance:
    the index follows without a rebuild."""
    x, queries = data
    conn = indexed_table(x)
    rng = np.random.default_rng(3)
    cur = x.copy()
    n = len(x)
    for epoch in range(5):
        order = rng.permutation(n)
        for start in range(0, n, 500):
            ids = order[start:start + 500]
            g = (0.05 * rng.standard_normal((len(ids), DIM))).astype(np.float32)
            conn.execute("INSERT INTO tok(tok, id, vector, lr) VALUES "
                         "('step', ?, ?, 1.0)",
                         ("[%s]" % ",".join(map(str, ids)), to_blob(g)))
            cur[ids] -= g
            knn(conn, queries[0])  # searches between steps move the index
    got = recall(conn, cur, queries)
    conn.execute("INSERT INTO tok(tok) VALUES ('integrity-check')")
    conn.execute("INSERT INTO tok(tok) VALUES ('build-index')")
    rebuilt = recall(conn, cur, queries)
    assert got >= rebuilt - 0.02, (got, rebuilt)


# ---------------------------------------------------------------- integrity


def test_integrity_check_finds_a_misplaced_row(data):
    x, _ = data
    conn = connect()
    make_table(conn, x[:500])
    conn.execute("INSERT INTO tok(tok) VALUES ('build-index')")
    conn.execute("INSERT INTO tok(tok) VALUES ('integrity-check')")
    # move the first id of cell 0 into cell 1's list
    ids0 = one(conn, "SELECT ids FROM tok_cells WHERE cell = 0")
    ids1 = one(conn, "SELECT ids FROM tok_cells WHERE cell = 1")
    moved = int(np.frombuffer(ids0[:8], dtype="<i8")[0])
    conn.execute("UPDATE tok_cells SET ids = ? WHERE cell = 0", (ids0[8:],))
    conn.execute("UPDATE tok_cells SET ids = ? WHERE cell = 1",
                 (ids0[:8] + ids1,))
    msg = error_of(conn, "INSERT INTO tok(tok) VALUES ('integrity-check')")
    assert msg.startswith(f"embedding tok: id {moved} is in cell 1 of the "
                          "index, but its vector belongs in cell "), msg
    # a damaged centre is named too
    conn.execute("UPDATE tok_cells SET centroid = x'00' WHERE cell = 2")
    assert error_of(conn, "INSERT INTO tok(tok) VALUES ('integrity-check')") \
        == "embedding tok: corrupt tok_cells: a centroid is not D finite " \
           "float32 (cell 2)"


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
@pytest.mark.parametrize("dim", [1, 5, 13])
def test_every_metric_and_odd_dims_probe_every_cell_exactly(metric, dim):
    """With every cell probed and every candidate re-ranked, the index
    answers as the exact search does, zero row and zero query included."""
    rng = np.random.default_rng(dim)
    x = rng.standard_normal((300, dim)).astype(np.float32)
    x[7] = 0
    conn = connect()
    conn.execute(f"CREATE VIRTUAL TABLE t USING embedding(dim={dim}, "
                 f"metric={metric}, index=ivf, nlist=7, oversample=1000)")
    conn.executemany("INSERT INTO t(id, vector) VALUES (?, ?)",
                     ((i, x[i].tobytes()) for i in range(len(x))))
    conn.execute("INSERT INTO t(t) VALUES ('build-index')")
    for q in (rng.standard_normal(dim).astype(np.float32),
              np.zeros(dim, np.float32)):
        sql = ("SELECT id, distance FROM t WHERE vector MATCH ? AND k = 10 "
               "AND nprobe = ?")
        assert conn.execute(sql, (to_blob(q), 100)).fetchall() == \
            conn.execute(sql, (to_blob(q), 0)).fetchall()
    conn.execute("INSERT INTO t(t) VALUES ('integrity-check')")
