"""The `embedding` virtual table (README: The `embedding` virtual table):
options and their stored form, deterministic initialization, reading
(indexed lookups and query plans), writing, transactions, schema operations
and exact similarity search (checked against a float64 numpy brute force)."""
import math
import re

import numpy as np
import pytest

from conftest import connect, from_blob, qident, row, rows, to_blob

# Query plan bits documented at the top of ext/table/plan.c (idxNum).
PLAN_EQ, PLAN_IN, PLAN_LO, PLAN_LO_GT = 0x001, 0x002, 0x004, 0x008
PLAN_HI, PLAN_HI_LT, PLAN_KNN, PLAN_K = 0x010, 0x020, 0x040, 0x080
PLAN_DESC = 0x400


def config(conn, name="tok"):
    return dict(conn.execute(f"SELECT key, value FROM {qident(name + '_config')}"))


def documented_config(conn, name="tok"):
    """The stored options the README documents (the table may store more)."""
    cfg = config(conn, name)
    assert DOCUMENTED_KEYS <= set(cfg), cfg
    return {k: v for k, v in cfg.items() if k in DOCUMENTED_KEYS}


def plan(conn, sql, params=()):
    return [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


def vtab_index(details, alias):
    """idxNum of the virtual table scanned as `alias` in a query plan."""
    for d in details:
        m = re.match(rf"SCAN {re.escape(alias)} VIRTUAL TABLE INDEX (\d+):", d)
        if m:
            return int(m.group(1))
    raise AssertionError(f"{alias} is not a virtual table scan in {details}")


def ids(conn, sql, params=()):
    return [r[0] for r in conn.execute(sql, params)]


def shadow_tables(conn, prefix):
    like = prefix.replace("_", "\\_") + "\\_%"
    return sorted(r[0] for r in conn.execute(
        "SELECT name FROM sqlite_schema WHERE name LIKE ? ESCAPE '\\'", (like,)))


# ------------------------------------------------------------------ options

DOCUMENTED_KEYS = {"dim", "num_embeddings", "init", "seed", "padding_idx",
                   "max_norm", "norm_type", "scale_grad_by_freq", "optimizer",
                   "metric"}


def test_default_options_are_stored(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=50)")
    cfg = documented_config(db)
    seed = cfg.pop("seed")
    assert re.fullmatch(r"-?\d+", seed), seed  # chosen at CREATE and recorded
    assert cfg == {"dim": "50", "num_embeddings": "0", "init": "normal",
                   "padding_idx": "none", "max_norm": "none", "norm_type": "2",
                   "scale_grad_by_freq": "0", "optimizer": "sgd",
                   "metric": "cosine"}
    assert db.execute("SELECT count(*) FROM tok").fetchone()[0] == 0


def test_all_options_are_stored(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(num_embeddings=10, "
               "embedding_dim=5, padding_idx=0, max_norm=1.5, norm_type=3, "
               "seed=42, init=uniform, scale_grad_by_freq=true, optimizer=sgd, "
               "metric=l2)")
    assert documented_config(db) == {"dim": "5", "num_embeddings": "10", "init": "uniform",
                          "seed": "42", "padding_idx": "0", "max_norm": "1.5",
                          "norm_type": "3", "scale_grad_by_freq": "1",
                          "optimizer": "sgd", "metric": "l2"}


def test_option_spellings(db):
    # keys are case-insensitive, values may be quoted, padding_idx may be
    # negative (counted from num_embeddings, as in PyTorch)
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(DIM='4', Metric=DOT, "
               "num_embeddings=6, padding_idx=-1, seed=-7, init=\"zeros\", "
               "norm_type=inf, scale_grad_by_freq=0)")
    cfg = documented_config(db)
    assert cfg["dim"] == "4" and cfg["metric"] == "dot"
    assert cfg["padding_idx"] == "5" and cfg["seed"] == "-7"
    assert cfg["init"] == "zeros" and cfg["norm_type"] == "inf"
    assert cfg["scale_grad_by_freq"] == "0"


def test_columns(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=3, num_embeddings=2)")
    info = db.execute("PRAGMA table_xinfo(tok)").fetchall()
    assert [(r[1], r[2].upper(), r[6]) for r in info] == [
        ("id", "INTEGER", 0), ("vector", "BLOB", 0),
        ("distance", "REAL", 1), ("k", "INTEGER", 1),
        ("lr", "REAL", 1),  # the step command's learning rate
        ("nprobe", "INTEGER", 1),  # cells an index=ivf search probes
        ("tok", "", 1)]  # the command column (README: Commands)
    cur = db.execute("SELECT * FROM tok")
    assert [d[0] for d in cur.description] == ["id", "vector"]
    got = cur.fetchall()
    assert [r[0] for r in got] == [0, 1]
    assert all(isinstance(r[1], bytes) and len(r[1]) == 12 for r in got)
    assert db.execute("SELECT rowid = id FROM tok").fetchall() == [(1,), (1,)]


# ------------------------------------------------------------ initialization

M64 = (1 << 64) - 1


def mix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def documented_initial_row(init, seed, id_, dim):
    """The algorithm documented in ext/core/initializer.c (and the README)."""
    key = mix64(mix64(seed & M64) ^ (id_ & M64))
    out = np.zeros(dim, np.float32)
    if init == "uniform":
        for j in range(dim):
            out[j] = ((mix64(key ^ j) >> 40) - 2**23) * 2.0**-23
    elif init == "normal":
        for j in range(0, dim, 2):
            u1 = 1.0 - (mix64(key ^ j) >> 11) * 2.0**-53
            u2 = (mix64(key ^ (j + 1)) >> 11) * 2.0**-53
            r = math.sqrt(-2.0 * math.log(u1))
            out[j] = r * math.cos(2 * math.pi * u2)
            if j + 1 < dim:
                out[j + 1] = r * math.sin(2 * math.pi * u2)
    return out


@pytest.mark.parametrize("init", ["normal", "uniform"])
@pytest.mark.parametrize("seed", [42, -5, 0, 2**63 - 1])
def test_initial_rows_follow_the_documented_algorithm(db, init, seed):
    db.execute(f"CREATE VIRTUAL TABLE tok USING embedding(dim=7, "
               f"num_embeddings=20, seed={seed}, init={init})")
    db.execute("INSERT INTO tok(id) VALUES (-3), (9223372036854775807), (1000)")
    got = rows(db, "tok")
    assert sorted(got) == [-3] + list(range(20)) + [1000, 9223372036854775807]
    for i, v in got.items():
        ref = documented_initial_row(init, seed, i, 7)
        assert np.array_equal(v, ref), (i, v, ref)


def test_same_seed_same_rows_across_databases(tmp_path):
    a, b = connect(str(tmp_path / "a.db")), connect(":memory:")
    for conn in (a, b):
        conn.execute("CREATE VIRTUAL TABLE tok USING embedding("
                     "num_embeddings=30, dim=9, seed=1234)")
    ra, rb = rows(a, "tok"), rows(b, "tok")
    assert sorted(ra) == list(range(30))
    assert all(np.array_equal(ra[i], rb[i]) for i in ra)
    a.close()
    b.close()


def test_different_seed_different_rows(db):
    db.execute("CREATE VIRTUAL TABLE t1 USING embedding(num_embeddings=10, dim=8, seed=1)")
    db.execute("CREATE VIRTUAL TABLE t2 USING embedding(num_embeddings=10, dim=8, seed=2)")
    r1, r2 = rows(db, "t1"), rows(db, "t2")
    assert all(not np.array_equal(r1[i], r2[i]) for i in range(10))
    # and different ids of one table differ
    assert len({r1[i].tobytes() for i in r1}) == 10


def test_recorded_seed_reproduces_the_rows(db):
    db.execute("CREATE VIRTUAL TABLE t1 USING embedding(num_embeddings=12, dim=6)")
    seed = config(db, "t1")["seed"]
    db.execute(f"CREATE VIRTUAL TABLE t2 USING embedding(num_embeddings=12, dim=6, seed={seed})")
    r1, r2 = rows(db, "t1"), rows(db, "t2")
    assert all(np.array_equal(r1[i], r2[i]) for i in range(12))


def test_unseeded_tables_get_different_seeds(db):
    db.execute("CREATE VIRTUAL TABLE t1 USING embedding(num_embeddings=3, dim=6)")
    db.execute("CREATE VIRTUAL TABLE t2 USING embedding(num_embeddings=3, dim=6)")
    assert config(db, "t1")["seed"] != config(db, "t2")["seed"]
    assert not np.array_equal(row(db, "t1", 0), row(db, "t2", 0))


def test_rows_do_not_depend_on_num_embeddings(db):
    db.execute("CREATE VIRTUAL TABLE small USING embedding(num_embeddings=5, dim=4, seed=3)")
    db.execute("CREATE VIRTUAL TABLE big USING embedding(num_embeddings=500, dim=4, seed=3)")
    s, b = rows(db, "small"), rows(db, "big")
    assert all(np.array_equal(s[i], b[i]) for i in range(5))


def test_init_normal_has_mean_0_std_1(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(num_embeddings=4000, dim=16, seed=5)")
    x = np.concatenate(list(rows(db, "tok").values())).astype(np.float64)
    assert x.size == 64000
    # standard error of the mean is 1/sqrt(64000) = 0.004
    assert abs(x.mean()) < 0.02
    assert abs(x.std() - 1.0) < 0.02
    assert abs(np.mean(np.abs(x) < 1.0) - 0.6827) < 0.01
    assert abs(np.mean(np.abs(x) < 2.0) - 0.9545) < 0.006
    # every element position is N(0, 1), not just the pooled values
    per_col = np.stack(list(rows(db, "tok").values()))
    assert np.all(np.abs(per_col.mean(axis=0)) < 0.08)
    assert np.all(np.abs(per_col.std(axis=0) - 1) < 0.08)


def test_init_uniform_is_in_minus_1_to_1(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(num_embeddings=4000, "
               "dim=16, seed=6, init=uniform)")
    x = np.concatenate(list(rows(db, "tok").values())).astype(np.float64)
    assert x.min() >= -1.0 and x.max() < 1.0
    assert x.min() < -0.999 and x.max() > 0.999
    assert abs(x.mean()) < 0.012
    assert abs(x.var() - 1.0 / 3.0) < 0.01
    hist, _ = np.histogram(x, bins=10, range=(-1, 1))
    assert np.all(np.abs(hist / x.size - 0.1) < 0.01)


def test_init_zeros(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(num_embeddings=50, dim=8, init=zeros)")
    db.execute("INSERT INTO tok(id) VALUES (77)")
    got = rows(db, "tok")
    assert len(got) == 51
    assert all(np.array_equal(v, np.zeros(8, np.float32)) for v in got.values())


def test_padding_idx_row_is_zeros(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(num_embeddings=10, dim=6, "
               "padding_idx=3, seed=1)")
    got = rows(db, "tok")
    assert np.array_equal(got[3], np.zeros(6, np.float32))
    assert all(np.any(got[i] != 0) for i in got if i != 3)


def test_padding_idx_row_inserted_later_is_zeros(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=6, padding_idx=7, seed=1)")
    db.execute("INSERT INTO tok(id) VALUES (6), (7), (8)")
    got = rows(db, "tok")
    assert np.array_equal(got[7], np.zeros(6, np.float32))
    assert np.any(got[6] != 0) and np.any(got[8] != 0)


# ---------------------------------------------------------------- reading


@pytest.fixture
def tok(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(num_embeddings=40, dim=5, seed=11)")
    return rows(db, "tok")


def test_point_lookup(db, tok):
    for i in (0, 7, 39):
        got = db.execute("SELECT id, vector FROM tok WHERE id = ?", (i,)).fetchall()
        assert len(got) == 1 and got[0][0] == i
        assert np.array_equal(from_blob(got[0][1]), tok[i])
    assert db.execute("SELECT * FROM tok WHERE id = 40").fetchall() == []
    assert db.execute("SELECT * FROM tok WHERE id = -1").fetchall() == []
    assert ids(db, "SELECT id FROM tok WHERE id = '12'") == [12]
    assert ids(db, "SELECT id FROM tok WHERE id = 12.0") == [12]
    assert ids(db, "SELECT id FROM tok WHERE id = 12.5") == []
    assert ids(db, "SELECT id FROM tok WHERE rowid = 13") == [13]
    assert vtab_index(plan(db, "SELECT * FROM tok WHERE id = 3"), "tok") == PLAN_EQ


def test_in_lookup(db, tok):
    got = db.execute("SELECT id, vector FROM tok WHERE id IN (30, 2, 99, 2, 17)").fetchall()
    assert [r[0] for r in got] == [2, 17, 30]
    for i, v in got:
        assert np.array_equal(from_blob(v), tok[i])
    assert vtab_index(plan(db, "SELECT * FROM tok WHERE id IN (30, 2, 17)"), "tok") == PLAN_IN
    db.execute("CREATE TABLE doc(token_id)")
    db.executemany("INSERT INTO doc VALUES (?)", [(5,), (1,), (5,), (100,)])
    sql = "SELECT id FROM tok WHERE id IN (SELECT token_id FROM doc)"
    assert sorted(ids(db, sql)) == [1, 5]
    assert vtab_index(plan(db, sql), "tok") == PLAN_IN


@pytest.mark.parametrize("where,expected,idx", [
    ("id > 35", [36, 37, 38, 39], PLAN_LO | PLAN_LO_GT),
    ("id >= 35", [35, 36, 37, 38, 39], PLAN_LO),
    ("id < 3", [0, 1, 2], PLAN_HI | PLAN_HI_LT),
    ("id <= 3", [0, 1, 2, 3], PLAN_HI),
    ("id > 10 AND id <= 13", [11, 12, 13], PLAN_LO | PLAN_LO_GT | PLAN_HI),
    ("id >= 10 AND id < 13", [10, 11, 12], PLAN_LO | PLAN_HI | PLAN_HI_LT),
    ("id BETWEEN 20 AND 22", [20, 21, 22], PLAN_LO | PLAN_HI),
    ("id > 2.5 AND id < 5.5", [3, 4, 5], None),
    ("id > 50", [], None),
    ("id > 9223372036854775807", [], None),
    ("id < -9223372036854775808", [], None),
])
def test_range_lookup(db, tok, where, expected, idx):
    assert ids(db, f"SELECT id FROM tok WHERE {where}") == expected
    if idx is not None:
        assert vtab_index(plan(db, f"SELECT * FROM tok WHERE {where}"), "tok") == idx


def test_join_drives_table_by_point_lookups(db, tok):
    db.execute("CREATE TABLE tokens(pos INTEGER PRIMARY KEY, token_id INTEGER)")
    seq = [3, 1, 3, 39, 0, 1000, 7]
    db.executemany("INSERT INTO tokens(pos, token_id) VALUES (?, ?)", list(enumerate(seq)))
    sql = ("SELECT t.pos, e.id, e.vector FROM tokens t JOIN tok e "
           "ON e.id = t.token_id ORDER BY t.pos")
    got = db.execute(sql).fetchall()
    assert [(p, i) for p, i, _ in got] == [(p, i) for p, i in enumerate(seq) if i < 40]
    for _, i, v in got:
        assert np.array_equal(from_blob(v), tok[i])
    details = plan(db, "SELECT t.pos, e.vector FROM tokens t JOIN tok e ON e.id = t.token_id")
    assert vtab_index(details, "e") == PLAN_EQ
    assert any(d.startswith("SCAN t") for d in details)


def test_full_scan_is_in_id_order(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=2)")
    order = [50, 3, -7, 1000, 12, 0, -100000, 2**62]
    for i in order:
        db.execute("INSERT INTO tok(id) VALUES (?)", (i,))
    assert ids(db, "SELECT id FROM tok") == sorted(order)
    assert ids(db, "SELECT id FROM tok ORDER BY id DESC") == sorted(order, reverse=True)
    assert vtab_index(plan(db, "SELECT * FROM tok"), "tok") == 0
    # the plans deliver id order, so no sorter is needed
    assert not any("TEMP B-TREE" in d for d in plan(db, "SELECT * FROM tok ORDER BY id"))
    assert not any("TEMP B-TREE" in d for d in plan(db, "SELECT * FROM tok ORDER BY id DESC"))


# ---------------------------------------------------------------- writing


def test_insert_id_only_is_initialized_like_create(db):
    db.execute("CREATE VIRTUAL TABLE full USING embedding(num_embeddings=25, dim=6, seed=99)")
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=6, seed=99)")
    for i in (19, 3, 7, 0, 24):
        db.execute("INSERT INTO tok(id) VALUES (?)", (i,))
    ref, got = rows(db, "full"), rows(db, "tok")
    assert sorted(got) == [0, 3, 7, 19, 24]
    for i in got:
        assert np.array_equal(got[i], ref[i])


@pytest.mark.parametrize("init", ["uniform", "zeros"])
def test_insert_id_only_uses_the_table_init(db, init):
    db.execute(f"CREATE VIRTUAL TABLE full USING embedding(num_embeddings=8, dim=6, seed=4, init={init})")
    db.execute(f"CREATE VIRTUAL TABLE tok USING embedding(dim=6, seed=4, init={init})")
    db.execute("INSERT INTO tok(id) VALUES (5)")
    assert np.array_equal(row(db, "tok", 5), row(db, "full", 5))


def test_insert_with_vector_blob_and_json(db, rng):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=4)")
    v = rng.standard_normal(4).astype(np.float32)
    db.execute("INSERT INTO tok(id, vector) VALUES (7, ?)", (to_blob(v),))
    db.execute("INSERT INTO tok(id, vector) VALUES (8, '[0.5, -1, 2e-3, 0]')")
    assert row(db, "tok", 7).tobytes() == to_blob(v)
    assert np.array_equal(row(db, "tok", 8), np.array([0.5, -1, 2e-3, 0], np.float32))
    assert db.execute("SELECT typeof(vector) FROM tok WHERE id = 8").fetchone()[0] == "blob"


def test_insert_with_auto_id(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=2, num_embeddings=3, seed=1)")
    cur = db.execute("INSERT INTO tok(vector) VALUES ('[1, 2]')")
    new = cur.lastrowid
    assert new not in (0, 1, 2)
    assert np.array_equal(row(db, "tok", new), np.array([1, 2], np.float32))
    db.execute("INSERT INTO tok(id, vector) VALUES (NULL, '[3, 4]')")
    assert len(ids(db, "SELECT id FROM tok")) == 5
    assert ids(db, "SELECT id FROM tok WHERE vector = ?", (to_blob([3, 4]),))[0] not in (0, 1, 2, new)
    # an auto id row without a vector is initialized
    db.execute("CREATE VIRTUAL TABLE empty USING embedding(dim=3, seed=8)")
    cur = db.execute("INSERT INTO empty DEFAULT VALUES")
    db.execute("CREATE VIRTUAL TABLE ref USING embedding(dim=3, seed=8)")
    db.execute("INSERT INTO ref(id) VALUES (?)", (cur.lastrowid,))
    assert np.array_equal(row(db, "empty", cur.lastrowid), row(db, "ref", cur.lastrowid))


def test_duplicate_id_is_a_unique_constraint_error(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=2, num_embeddings=3, seed=1)")
    before = rows(db, "tok")
    for sql in ["INSERT INTO tok(id) VALUES (1)",
                "INSERT INTO tok(id, vector) VALUES (2, '[9, 9]')"]:
        with pytest.raises(Exception) as info:
            db.execute(sql)
        assert type(info.value).__name__ == "IntegrityError"
        assert str(info.value) == "UNIQUE constraint failed: tok.id"
    after = rows(db, "tok")
    assert sorted(after) == [0, 1, 2]
    assert all(np.array_equal(before[i], after[i]) for i in after)


def test_insert_or_replace_and_or_ignore(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=2, num_embeddings=3, seed=1)")
    before = rows(db, "tok")
    db.execute("INSERT OR REPLACE INTO tok(id, vector) VALUES (1, '[5, 5]')")
    assert np.array_equal(row(db, "tok", 1), [5, 5])
    db.execute("REPLACE INTO tok(id, vector) VALUES (2, '[6, 6]')")
    assert np.array_equal(row(db, "tok", 2), [6, 6])
    db.execute("INSERT OR IGNORE INTO tok(id, vector) VALUES (1, '[7, 7]'), (20, '[8, 8]')")
    assert np.array_equal(row(db, "tok", 1), [5, 5])
    assert np.array_equal(row(db, "tok", 20), [8, 8])
    assert np.array_equal(row(db, "tok", 0), before[0])
    # OR REPLACE of an id-only row re-initializes it
    db.execute("INSERT OR REPLACE INTO tok(id) VALUES (1)")
    assert np.array_equal(row(db, "tok", 1), before[1])
    assert ids(db, "SELECT id FROM tok") == [0, 1, 2, 20]


def test_failing_multi_row_insert_leaves_none_of_its_rows(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=2, num_embeddings=3, seed=1)")
    with pytest.raises(Exception, match="UNIQUE constraint failed: tok.id"):
        db.execute("INSERT INTO tok(id, vector) VALUES (10, '[1, 1]'), (11, '[2, 2]'), (1, '[3, 3]')")
    assert ids(db, "SELECT id FROM tok") == [0, 1, 2]
    # inside a transaction: the statement is undone, the transaction goes on
    db.execute("BEGIN")
    db.execute("INSERT INTO tok(id) VALUES (5)")
    with pytest.raises(Exception, match="UNIQUE constraint failed: tok.id"):
        db.execute("INSERT INTO tok(id) VALUES (12), (13), (5), (14)")
    with pytest.raises(Exception, match="dimension mismatch"):
        db.execute("INSERT INTO tok(id, vector) VALUES (15, '[1, 1]'), (16, '[1, 1, 1]')")
    assert ids(db, "SELECT id FROM tok") == [0, 1, 2, 5]
    db.execute("COMMIT")
    assert ids(db, "SELECT id FROM tok") == [0, 1, 2, 5]


def test_insert_or_fail_keeps_rows_before_the_failure(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=2, num_embeddings=3, seed=1)")
    with pytest.raises(Exception, match="UNIQUE constraint failed: tok.id"):
        db.execute("INSERT OR FAIL INTO tok(id) VALUES (10), (1), (11)")
    assert ids(db, "SELECT id FROM tok") == [0, 1, 2, 10]


def test_update_vector(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=3, num_embeddings=4, seed=1)")
    before = rows(db, "tok")
    db.execute("UPDATE tok SET vector = '[1, 2, 3]' WHERE id = 2")
    db.execute("UPDATE tok SET vector = ? WHERE id = 3", (to_blob([4, 5, 6]),))
    after = rows(db, "tok")
    assert np.array_equal(after[2], [1, 2, 3]) and np.array_equal(after[3], [4, 5, 6])
    assert np.array_equal(after[0], before[0]) and np.array_equal(after[1], before[1])
    db.execute("UPDATE tok SET vector = embed_scale(vector, 2)")
    doubled = rows(db, "tok")
    assert all(np.array_equal(doubled[i], after[i] * 2) for i in after)


def test_update_id_moves_the_row(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=3, num_embeddings=4, seed=1)")
    before = rows(db, "tok")
    db.execute("UPDATE tok SET id = 10 WHERE id = 1")
    after = rows(db, "tok")
    assert sorted(after) == [0, 2, 3, 10]
    assert np.array_equal(after[10], before[1])
    db.execute("UPDATE tok SET id = 11, vector = '[1, 1, 1]' WHERE id = 10")
    assert np.array_equal(row(db, "tok", 11), [1, 1, 1])
    with pytest.raises(Exception, match=r"^UNIQUE constraint failed: tok.id$"):
        db.execute("UPDATE tok SET id = 0 WHERE id = 11")
    assert sorted(rows(db, "tok")) == [0, 2, 3, 11]
    db.execute("UPDATE OR REPLACE tok SET id = 0 WHERE id = 11")
    assert sorted(rows(db, "tok")) == [0, 2, 3]
    assert np.array_equal(row(db, "tok", 0), [1, 1, 1])
    db.execute("UPDATE tok SET id = id + 100")
    final = rows(db, "tok")
    assert sorted(final) == [100, 102, 103]
    assert np.array_equal(final[102], before[2])


def test_delete(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=3, num_embeddings=10, seed=1)")
    db.execute("DELETE FROM tok WHERE id = 4")
    db.execute("DELETE FROM tok WHERE id IN (0, 9)")
    db.execute("DELETE FROM tok WHERE id % 2 = 1")
    assert ids(db, "SELECT id FROM tok") == [2, 6, 8]
    db.execute("DELETE FROM tok")
    assert ids(db, "SELECT id FROM tok") == []


def test_insert_from_itself_copies_each_row_once(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=3, num_embeddings=6, seed=1)")
    before = rows(db, "tok")
    db.execute("INSERT INTO tok(id, vector) SELECT id + 3, vector FROM tok WHERE id >= 3")
    db.execute("INSERT INTO tok(id, vector) SELECT id + 1000, vector FROM tok")
    after = rows(db, "tok")
    assert sorted(after) == list(range(9)) + [1000 + i for i in range(9)]
    assert np.array_equal(after[7], before[4])
    assert np.array_equal(after[1007], before[4])


# ------------------------------------------------------------ transactions


def test_rollback_undoes_everything(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=3, num_embeddings=5, seed=1)")
    before = rows(db, "tok")
    db.execute("BEGIN")
    db.execute("INSERT INTO tok(id) VALUES (30)")
    db.execute("INSERT INTO tok(id, vector) VALUES (31, '[1, 2, 3]')")
    db.execute("UPDATE tok SET vector = '[9, 9, 9]' WHERE id = 0")
    db.execute("UPDATE tok SET id = 40 WHERE id = 1")
    db.execute("DELETE FROM tok WHERE id = 2")
    assert db.execute("SELECT embed_update('tok', 3, '[1, 1, 1]', 0.5)").fetchone()[0] == 1
    assert db.execute("SELECT embed_update('tok', '[4, 4, 0]', "
                      "'[[1, 1, 1], [1, 1, 1], [2, 2, 2]]', 0.5)").fetchone()[0] == 2
    assert sorted(rows(db, "tok")) == [0, 3, 4, 30, 31, 40]
    db.execute("ROLLBACK")
    after = rows(db, "tok")
    assert sorted(after) == [0, 1, 2, 3, 4]
    assert all(np.array_equal(before[i], after[i]) for i in before)


def test_rollback_to_savepoint(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=3, num_embeddings=3, seed=1)")
    before = rows(db, "tok")
    db.execute("BEGIN")
    db.execute("INSERT INTO tok(id) VALUES (10)")
    db.execute("SAVEPOINT s")
    db.execute("INSERT INTO tok(id) VALUES (11)")
    db.execute("SELECT embed_update('tok', 0, '[1, 1, 1]', 1)").fetchall()
    db.execute("DELETE FROM tok WHERE id = 1")
    db.execute("ROLLBACK TO s")
    db.execute("COMMIT")
    after = rows(db, "tok")
    assert sorted(after) == [0, 1, 2, 10]
    assert all(np.array_equal(before[i], after[i]) for i in before)


def test_data_persists_across_reopen(db_path):
    conn = connect(db_path)
    conn.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=4, num_embeddings=6, "
                 "padding_idx=2, max_norm=2.5, metric=l2)")
    conn.execute("INSERT INTO tok(id, vector) VALUES (50, '[1, 2, 3, 4]')")
    conn.execute("SELECT embed_update('tok', 1, '[1, 1, 1, 1]', 0.25)").fetchall()
    saved, cfg = rows(conn, "tok"), config(conn)
    conn.close()
    conn = connect(db_path)
    again = rows(conn, "tok")
    assert sorted(again) == sorted(saved)
    assert all(np.array_equal(saved[i], again[i]) for i in saved)
    assert config(conn) == cfg
    # the reopened table keeps its seed and options
    conn.execute("INSERT INTO tok(id) VALUES (6)")
    conn.execute(f"CREATE VIRTUAL TABLE ref USING embedding(dim=4, num_embeddings=7, seed={cfg['seed']})")
    assert np.array_equal(row(conn, "tok", 6), row(conn, "ref", 6))
    assert conn.execute("SELECT embed_update('tok', 2, '[1, 1, 1, 1]', 1)").fetchone()[0] == 0
    near = conn.execute("SELECT id FROM tok WHERE vector MATCH '[1, 2, 3, 4]' AND k = 1").fetchall()
    assert near == [(50,)]
    conn.close()


def test_other_connection_sees_only_committed_rows(db_path):
    a = connect(db_path)
    a.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=2, num_embeddings=3, seed=1)")
    b = connect(db_path)
    committed = rows(b, "tok")
    a.execute("BEGIN")
    a.execute("INSERT INTO tok(id, vector) VALUES (10, '[1, 1]')")
    a.execute("UPDATE tok SET vector = '[2, 2]' WHERE id = 0")
    a.execute("SELECT embed_update('tok', 1, '[1, 1]', 1)").fetchall()
    seen = rows(b, "tok")
    assert sorted(seen) == [0, 1, 2]
    assert all(np.array_equal(seen[i], committed[i]) for i in seen)
    assert b.execute("SELECT embed_lookup('tok', 1)").fetchone()[0] == to_blob(committed[1])
    a.execute("COMMIT")
    seen = rows(b, "tok")
    assert sorted(seen) == [0, 1, 2, 10]
    assert np.array_equal(seen[0], [2, 2])
    assert np.array_equal(seen[1], committed[1] - 1)
    a.close()
    b.close()


# ----------------------------------------------------- DROP and RENAME


def test_drop_table_removes_shadow_tables(db):
    db.execute("CREATE TABLE x(a)")
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=3, num_embeddings=5)")
    assert shadow_tables(db, "tok")
    db.execute("DROP TABLE tok")
    assert shadow_tables(db, "tok") == []
    assert db.execute("SELECT name FROM sqlite_schema").fetchall() == [("x",)]
    # the name is free again
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=4, num_embeddings=2)")
    assert db.execute("SELECT length(vector) FROM tok WHERE id = 1").fetchone()[0] == 16


def test_drop_table_in_attached_schema(db):
    db.execute("ATTACH ':memory:' AS aux")
    db.execute("CREATE VIRTUAL TABLE aux.tok USING embedding(dim=3, num_embeddings=5)")
    names = [r[0] for r in db.execute("SELECT name FROM aux.sqlite_schema")]
    assert "tok" in names and len(names) > 1
    assert all(n == "tok" or n.startswith("tok_") for n in names)
    assert db.execute("SELECT name FROM main.sqlite_schema").fetchall() == []
    db.execute("DROP TABLE aux.tok")
    assert db.execute("SELECT name FROM aux.sqlite_schema").fetchall() == []


def test_rename_renames_shadow_tables(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=3, num_embeddings=5, seed=2)")
    before, shadows = rows(db, "tok"), shadow_tables(db, "tok")
    db.execute("ALTER TABLE tok RENAME TO tik")
    assert shadow_tables(db, "tok") == []
    assert shadow_tables(db, "tik") == ["tik" + s[3:] for s in shadows]
    after = rows(db, "tik")
    assert all(np.array_equal(before[i], after[i]) for i in before)
    db.execute("INSERT INTO tik(id) VALUES (10)")
    db.execute("UPDATE tik SET vector = '[1, 2, 3]' WHERE id = 0")
    assert np.array_equal(row(db, "tik", 0), [1, 2, 3])
    assert db.execute("SELECT embed_update('tik', 1, '[1, 1, 1]', 1)").fetchone()[0] == 1
    assert np.array_equal(row(db, "tik", 1), before[1] - 1)
    assert db.execute("SELECT embed_lookup('tik', 10)").fetchone()[0] == to_blob(row(db, "tik", 10))
    assert config(db, "tik")["seed"] == "2"
    with pytest.raises(Exception, match="no such table: tok"):
        db.execute("SELECT * FROM tok")
    # and it can be dropped cleanly under its new name
    db.execute("DROP TABLE tik")
    assert db.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] == 0


def test_rename_survives_reopen(db_path):
    conn = connect(db_path)
    conn.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=3, num_embeddings=5, seed=2)")
    before = rows(conn, "tok")
    conn.execute("ALTER TABLE tok RENAME TO tik")
    conn.close()
    conn = connect(db_path)
    after = rows(conn, "tik")
    assert all(np.array_equal(before[i], after[i]) for i in before)
    conn.close()


# ----------------------------------------------------- similarity search


def reference_knn(W, row_ids, q, metric, k):
    W64, q64 = W.astype(np.float64), q.astype(np.float64)
    if metric == "l2":
        d = np.sqrt(((W64 - q64) ** 2).sum(axis=1))
    elif metric == "dot":
        d = -(W64 @ q64)
    else:
        nq = max(np.linalg.norm(q64), 1e-8)
        nw = np.maximum(np.linalg.norm(W64, axis=1), 1e-8)
        d = 1.0 - np.clip((W64 @ q64) / (nw * nq), -1.0, 1.0)
    row_ids = np.asarray(row_ids)
    order = np.lexsort((row_ids, d))[:k]
    return [int(i) for i in row_ids[order]], d[order]


@pytest.fixture(params=["cosine", "l2", "dot"])
def search_table(request, db, rng):
    """300 rows of dim 16 with exact duplicates (ties) at other ids."""
    metric = request.param
    n, dim = 300, 16
    W = rng.standard_normal((n, dim)).astype(np.float32)
    # ties: identical rows (and, for cosine, rows scaled by 2: same angle)
    W[250] = W[10]
    W[251] = W[10]
    W[120] = W[77]
    W[290] = W[3] * (2 if metric == "cosine" else 1)
    W[42] = 0.0  # a zero row: cosine distance 1
    db.execute(f"CREATE VIRTUAL TABLE tok USING embedding(dim={dim}, metric={metric})")
    db.executemany("INSERT INTO tok(id, vector) VALUES (?, ?)",
                   [(i, to_blob(W[i])) for i in range(n)])
    return metric, W


def check_knn(db, W, row_ids, q, metric, k, sql, params):
    got = db.execute(sql, params).fetchall()
    ref_ids, ref_d = reference_knn(W[row_ids], row_ids, q, metric, k)
    assert [r[0] for r in got] == ref_ids
    np.testing.assert_allclose([r[1] for r in got], ref_d, rtol=1e-6, atol=1e-9)
    return got


def test_search_matches_brute_force(db, search_table, rng):
    metric, W = search_table
    all_ids = list(range(len(W)))
    queries = [rng.standard_normal(16).astype(np.float32) for _ in range(5)]
    queries += [W[10], W[77], W[3]]  # queries that hit the ties first
    # in autocommit mode, and inside a write transaction (where the search
    # must see this connection's uncommitted rows, so it may take another path)
    for begin in (None, "BEGIN IMMEDIATE"):
        if begin:
            db.execute(begin)
        for q in queries:
            for k in (1, 5, 10, 37):
                check_knn(db, W, all_ids, q, metric, k,
                          "SELECT id, distance FROM tok WHERE vector MATCH ? AND k = ?",
                          (to_blob(q), k))
        if begin:
            db.execute("COMMIT")


def test_search_ties_are_broken_by_id(db, search_table):
    metric, W = search_table
    got = db.execute("SELECT id, distance FROM tok WHERE vector MATCH ? AND k = 300",
                     (to_blob(W[10]),)).fetchall()
    pos = {i: n for n, (i, _) in enumerate(got)}
    dist = dict(got)
    assert dist[10] == dist[250] == dist[251]
    assert pos[10] < pos[250] < pos[251]
    assert dist[77] == dist[120] and pos[77] < pos[120]
    assert dist[3] == dist[290] and pos[3] < pos[290]
    if metric == "l2":
        assert got[:3] == [(10, 0.0), (250, 0.0), (251, 0.0)]
    if metric == "cosine":
        assert dist[42] == pytest.approx(1.0)


def test_search_with_k_larger_than_the_table(db, search_table, rng):
    metric, W = search_table
    q = rng.standard_normal(16).astype(np.float32)
    got = check_knn(db, W, list(range(300)), q, metric, 300,
                    "SELECT id, distance FROM tok WHERE vector MATCH ? AND k = 1000",
                    (to_blob(q),))
    assert len(got) == 300
    d = [r[1] for r in got]
    assert d == sorted(d)


def test_search_filters_apply_before_ranking(db, search_table, rng):
    metric, W = search_table
    q = rng.standard_normal(16).astype(np.float32)
    chosen = sorted(int(i) for i in rng.choice(300, 25, replace=False))
    db.execute("CREATE TABLE doc(token_id)")
    db.executemany("INSERT INTO doc VALUES (?)", [(i,) for i in chosen + chosen[:5] + [5000]])
    in_list = ",".join(map(str, chosen))
    for k, begin in [(1, None), (10, None), (25, "BEGIN IMMEDIATE"), (40, None)]:
        if begin:
            db.execute(begin)
        got = check_knn(db, W, chosen, q, metric, k,
                        f"SELECT id, distance FROM tok WHERE vector MATCH ? AND k = ? "
                        f"AND id IN ({in_list})", (to_blob(q), k))
        assert len(got) == min(k, 25)  # k rows whenever k rows qualify
        check_knn(db, W, chosen, q, metric, k,
                  "SELECT id, distance FROM tok WHERE vector MATCH ? AND k = ? "
                  "AND id IN (SELECT token_id FROM doc)", (to_blob(q), k))
        check_knn(db, W, list(range(100, 150)), q, metric, k,
                  "SELECT id, distance FROM tok WHERE vector MATCH ? AND k = ? "
                  "AND id BETWEEN 100 AND 149", (to_blob(q), k))
        check_knn(db, W, list(range(201, 300)), q, metric, k,
                  "SELECT id, distance FROM tok WHERE vector MATCH ? AND k = ? "
                  "AND id > 200", (to_blob(q), k))
        if begin:
            db.execute("COMMIT")
    idx = vtab_index(plan(db, "SELECT id FROM tok WHERE vector MATCH ? AND k = 3 "
                              "AND id IN (SELECT token_id FROM doc)", (to_blob(q),)), "tok")
    assert idx & PLAN_KNN and idx & PLAN_K and idx & PLAN_IN


def test_search_returns_vectors_and_k(db, search_table, rng):
    metric, W = search_table
    q = rng.standard_normal(16).astype(np.float32)
    got = db.execute("SELECT id, vector, k FROM tok WHERE vector MATCH ? AND k = 4",
                     (to_blob(q),)).fetchall()
    assert len(got) == 4
    for i, v, k in got:
        assert v == to_blob(W[i]) and k == 4


def test_search_with_json_query(db, search_table, rng):
    metric, W = search_table
    q = rng.standard_normal(16).astype(np.float32)
    text = db.execute("SELECT embed_json(?)", (to_blob(q),)).fetchone()[0]
    a = db.execute("SELECT id, distance FROM tok WHERE vector MATCH ? AND k = 7", (text,)).fetchall()
    b = db.execute("SELECT id, distance FROM tok WHERE vector MATCH ? AND k = 7", (to_blob(q),)).fetchall()
    assert a == b and len(a) == 7


def test_search_order_by_distance_limit(db, rng):
    """README, Similarity search: `ORDER BY distance LIMIT 10` in place of
    `k = 10` works too (and SQLite 3.40 is a supported version)."""
    W = rng.standard_normal((50, 8)).astype(np.float32)
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=8, metric=l2)")
    db.executemany("INSERT INTO tok(id, vector) VALUES (?, ?)",
                   [(i, to_blob(W[i])) for i in range(50)])
    q = rng.standard_normal(8).astype(np.float32)
    got = db.execute("SELECT id, distance FROM tok WHERE vector MATCH ? "
                     "ORDER BY distance LIMIT 10", (to_blob(q),)).fetchall()
    ref_ids, ref_d = reference_knn(W, list(range(50)), q, "l2", 10)
    assert [r[0] for r in got] == ref_ids
    np.testing.assert_allclose([r[1] for r in got], ref_d, rtol=1e-6)


def test_search_with_k_and_a_smaller_limit(db, search_table, rng):
    metric, W = search_table
    q = rng.standard_normal(16).astype(np.float32)
    ref = db.execute("SELECT id, distance FROM tok WHERE vector MATCH ? AND k = 10",
                     (to_blob(q),)).fetchall()
    got = db.execute("SELECT id, distance FROM tok WHERE vector MATCH ? AND k = 10 "
                     "ORDER BY distance LIMIT 3", (to_blob(q),)).fetchall()
    assert got == ref[:3]
    got = db.execute("SELECT id FROM tok WHERE vector MATCH ? AND k = 10 "
                     "ORDER BY id", (to_blob(q),)).fetchall()
    assert [r[0] for r in got] == sorted(r[0] for r in ref)


def test_search_sees_uncommitted_changes_of_its_own_transaction(db, search_table):
    metric, W = search_table
    q = W[10] * 3
    db.execute("BEGIN")
    db.execute("DELETE FROM tok WHERE id IN (10, 250, 251)")
    db.execute("INSERT INTO tok(id, vector) VALUES (1000, ?)", (to_blob(q),))
    got = db.execute("SELECT id FROM tok WHERE vector MATCH ? AND k = 300",
                     (to_blob(q),)).fetchall()
    db.execute("ROLLBACK")
    assert (1000,) in got and len(got) == 298
    if metric != "dot":
        assert got[0] == (1000,)
    assert not {10, 250, 251} & {r[0] for r in got}


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_search_follows_every_kind_of_change(db_path, rng, journal):
    """Each search ranks the rows as they are at that moment: after writes,
    training steps, rollbacks, renames and other connections' commits."""
    conn, other = connect(db_path), None
    conn.execute(f"PRAGMA journal_mode = {journal}").fetchall()
    dim, metric = 8, "l2"
    conn.execute(f"CREATE VIRTUAL TABLE tok USING embedding(dim={dim}, metric={metric}, "
                 "num_embeddings=60, seed=3)")
    q = rng.standard_normal(dim).astype(np.float32)
    sql = "SELECT id, distance FROM tok WHERE vector MATCH ? AND k = 10"

    def check(c=conn):
        current = rows(c, "tok")
        order = sorted(current)
        W = np.stack([current[i] for i in order])
        ref_ids, ref_d = reference_knn(W, order, q, metric, 10)
        got = c.execute(sql, (to_blob(q),)).fetchall()
        assert [r[0] for r in got] == ref_ids
        np.testing.assert_allclose([r[1] for r in got], ref_d, rtol=1e-6)
        return ref_ids

    first = check()
    conn.execute("INSERT INTO tok(id, vector) VALUES (100, ?)", (to_blob(q),))
    assert check()[0] == 100
    conn.execute("UPDATE tok SET vector = ? WHERE id = 100", (to_blob(-q),))
    assert 100 not in check()[:1]
    conn.execute("UPDATE tok SET vector = ? WHERE id = ?", (to_blob(q + 0.01), first[-1]))
    assert check()[0] == first[-1]
    conn.execute("DELETE FROM tok WHERE id = ?", (first[-1],))
    assert first[-1] not in check()
    g = (first[3] if first[3] != first[-1] else first[4])
    conn.execute("SELECT embed_update('tok', ?, ?, 1)", (g, to_blob(rng.standard_normal(dim) * 5))).fetchall()
    check()
    conn.execute("UPDATE tok SET id = 500 WHERE id = ?", (first[0],))
    assert 500 in check()
    conn.execute("BEGIN")
    conn.execute("INSERT INTO tok(id, vector) VALUES (200, ?)", (to_blob(q),))
    assert check()[0] == 200
    conn.execute("ROLLBACK")
    assert 200 not in check()
    other = connect(db_path)
    check(other)
    other.execute("INSERT INTO tok(id, vector) VALUES (300, ?)", (to_blob(q),))
    assert check()[0] == 300
    other.execute("DELETE FROM tok WHERE id = 300")
    assert 300 not in check()
    other.execute("UPDATE tok SET vector = ? WHERE id = 1", (to_blob(q),))
    assert check()[0] == 1
    other.close()
    conn.execute("ALTER TABLE tok RENAME TO tik")
    conn.execute("ALTER TABLE tik RENAME TO tok")
    assert check()[0] == 1
    conn.execute("INSERT INTO tok(id, vector) VALUES (-1, ?)", (to_blob(q),))
    assert check()[:2] == [-1, 1]
    conn.execute("DROP TABLE tok")
    conn.execute(f"CREATE VIRTUAL TABLE tok USING embedding(dim={dim}, metric={metric}, "
                 "num_embeddings=60, seed=4)")
    check()
    conn.close()


def test_largest_dimension(db):
    db.execute("CREATE VIRTUAL TABLE big USING embedding(dim=65536, num_embeddings=2, seed=1)")
    assert db.execute("SELECT length(vector) FROM big WHERE id = 1").fetchone()[0] == 65536 * 4
    v = (np.arange(65536) / 65536).astype(np.float32)
    db.execute("INSERT INTO big(id, vector) VALUES (10, ?)", (to_blob(v),))
    assert row(db, "big", 10).tobytes() == to_blob(v)
    assert db.execute("SELECT id FROM big WHERE vector MATCH ? AND k = 1",
                      (to_blob(v),)).fetchone()[0] == 10
    assert db.execute("SELECT embed_update('big', 10, ?, 1)", (to_blob(v),)).fetchone()[0] == 1
    assert np.array_equal(row(db, "big", 10), np.zeros(65536, np.float32))
    assert len(db.execute("SELECT embed_lookup('big', '[0, 1, 10, 1]')").fetchone()[0]) == 4 * 65536 * 4


def test_utf16_database(tmp_path):
    conn = connect(str(tmp_path / "u16.db"))
    conn.execute("PRAGMA encoding = 'UTF-16le'")
    conn.execute('CREATE VIRTUAL TABLE "tök" USING embedding(dim=3, num_embeddings=3, seed=1)')
    assert conn.execute("PRAGMA encoding").fetchone()[0] == "UTF-16le"
    conn.execute("INSERT INTO \"tök\"(id, vector) VALUES (5, ' [1, 2.5, -3] ')")
    assert conn.execute("SELECT embed_json(vector) FROM \"tök\" WHERE id = 5").fetchone()[0] == "[1,2.5,-3]"
    assert conn.execute("SELECT embed_lookup('tök', '[5, 5]')").fetchone()[0] == to_blob([1, 2.5, -3] * 2)
    assert conn.execute("SELECT embed_update('tök', '[5]', '[[1, 1, 1]]', 1)").fetchone()[0] == 1
    assert np.array_equal(row(conn, "tök", 5), [0, 1.5, -4])
    assert conn.execute("SELECT id FROM \"tök\" WHERE vector MATCH '[0, 1.5, -4]' AND k = 1").fetchone()[0] == 5
    conn.close()
