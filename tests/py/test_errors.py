"""Bad input (README: Errors) is an error with an exact message that names
the function (or table), the problem and the values, and a failing
statement changes nothing: each one runs on a file database whose bytes are
hashed before and after."""
import json

import numpy as np
import pytest

from conftest import connect, f32, file_hash, qident, rows, to_blob

NAN, INF = float("nan"), float("inf")


@pytest.fixture
def fdb(file_db, db_path):
    """A file database with `tok` (dim 3, rows 0..4, padding_idx 0) and a
    plain table `x`; `fdb.fails(sql, params, message)` runs a statement that
    must fail with exactly `message` and leave the file's bytes unchanged."""
    file_db.execute("CREATE TABLE x(a)")
    file_db.execute("INSERT INTO x VALUES (1)")
    file_db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=3, "
                    "num_embeddings=5, seed=1, padding_idx=0)")
    file_db.execute("UPDATE tok SET vector = '[3e38, 1, 1]' WHERE id = 4")

    class Fdb:
        conn = file_db
        path = db_path

        def fails(self, sql, params=(), message=None):
            before = file_hash(db_path)
            with pytest.raises(Exception) as info:
                file_db.execute(sql, params).fetchall()
            assert file_hash(db_path) == before, f"file changed by: {sql}"
            assert not file_db.in_transaction
            if message is not None:
                assert str(info.value) == message
            return str(info.value)

    return Fdb()


def nan_blob(n, at, value):
    v = np.ones(n, np.float32)
    v[at] = value
    return to_blob(v)


# (value, problem): every invalid form of a vector (README: Vectors); the
# message of `who` is f"{who}: {problem}"
INVALID_VECTORS = [
    pytest.param(b"", "empty vector", id="empty-blob"),
    pytest.param(b"\x00" * 5, "BLOB length 5 is not a multiple of 4 (float32)", id="blob-5"),
    pytest.param(b"\x00" * 6, "BLOB length 6 is not a multiple of 4 (float32)", id="blob-6"),
    pytest.param(b"\x00" * 13, "BLOB length 13 is not a multiple of 4 (float32)", id="blob-13"),
    pytest.param(nan_blob(3, 1, NAN), "element 1 is NaN", id="blob-nan"),
    pytest.param(nan_blob(3, 2, INF), "element 2 is +Inf", id="blob-inf"),
    pytest.param(nan_blob(3, 0, -INF), "element 0 is -Inf", id="blob-minus-inf"),
    pytest.param(to_blob(np.zeros(65537)), "dimension 65537 exceeds the limit of 65536", id="blob-65537"),
    pytest.param("[]", "empty vector", id="json-empty"),
    pytest.param("[1, 2", "malformed JSON vector at offset 5 (expected ',' or ']')", id="json-open"),
    pytest.param("[1, 2] x", "malformed JSON vector at offset 7 (expected the end of the text)", id="json-trailing"),
    pytest.param("1, 2, 3", "malformed JSON vector at offset 0 (expected '[')", id="json-no-bracket"),
    pytest.param("", "malformed JSON vector at offset 0 (expected '[')", id="json-empty-text"),
    pytest.param("[1,,2]", "malformed JSON vector at offset 3 (expected a number)", id="json-double-comma"),
    pytest.param("[1, 2,]", "malformed JSON vector at offset 6 (expected a number)", id="json-trailing-comma"),
    pytest.param('["1", 2]', "malformed JSON vector at offset 1 (expected a number)", id="json-string"),
    pytest.param("[true]", "malformed JSON vector at offset 1 (expected a number)", id="json-true"),
    pytest.param("[[1, 2]]", "malformed JSON vector at offset 1 (expected a number)", id="json-nested"),
    pytest.param("[1.]", "malformed JSON vector at offset 3 (expected a number)", id="json-bad-fraction"),
    pytest.param("[01]", "malformed JSON vector at offset 2 (expected ',' or ']')", id="json-leading-zero"),
    pytest.param("[NaN, 1]", "malformed JSON vector at offset 1 (expected a number)", id="json-nan"),
    pytest.param("[Infinity]", "malformed JSON vector at offset 1 (expected a number)", id="json-infinity"),
    pytest.param("[1, 1e39, 2]", "element 1 is +Inf", id="json-overflow"),
    pytest.param("[-1e39]", "element 0 is -Inf", id="json-negative-overflow"),
    pytest.param("[" + ",".join(["0"] * 65537) + "]", "dimension 65537 exceeds the limit of 65536", id="json-65537"),
    pytest.param(3, "expected a vector (BLOB or JSON text), got INTEGER", id="integer"),
    pytest.param(2.5, "expected a vector (BLOB or JSON text), got REAL", id="real"),
]

# (sql, who): places that take one vector, with the bad one as parameter 1
VECTOR_TAKERS = [
    ("SELECT embed_vector(?)", "embed_vector"),
    ("SELECT embed_json(?)", "embed_json"),
    ("SELECT embed_dim(?)", "embed_dim"),
    ("SELECT embed_norm(?)", "embed_norm"),
    ("SELECT embed_normalize(?)", "embed_normalize"),
    ("SELECT embed_scale(?, 2)", "embed_scale"),
    ("SELECT embed_cosine(?, '[1, 2, 3]')", "embed_cosine"),
    ("SELECT embed_dot('[1, 2, 3]', ?)", "embed_dot"),
    ("SELECT embed_l2(?, '[1, 2, 3]')", "embed_l2"),
    ("SELECT embed_add('[1, 2, 3]', ?)", "embed_add"),
    ("SELECT embed_sub(?, '[1, 2, 3]')", "embed_sub"),
    ("SELECT embed_sum(v) FROM (SELECT '[1, 2, 3]' AS v UNION ALL SELECT ?)", "embed_sum"),
    ("SELECT embed_max(v) FROM (SELECT ? AS v)", "embed_max"),
    ("SELECT embed_mean(v) FROM (SELECT ? AS v)", "embed_mean"),
    ("INSERT INTO tok(id, vector) VALUES (9, ?)", "embedding tok"),
    ("UPDATE tok SET vector = ? WHERE id = 1", "embedding tok"),
    ("SELECT id FROM tok WHERE vector MATCH ? AND k = 2", "embedding tok"),
    ("SELECT embed_update('tok', 1, ?, 0.1)", "embed_update"),
]


@pytest.mark.parametrize("value,problem", INVALID_VECTORS)
def test_invalid_vectors_are_rejected_everywhere(fdb, value, problem):
    for sql, who in VECTOR_TAKERS:
        fdb.fails(sql, (value,), f"{who}: {problem}")


def test_dimension_mismatch_in_binary_functions(fdb):
    for fn in ["embed_cosine", "embed_dot", "embed_l2", "embed_add", "embed_sub"]:
        fdb.fails(f"SELECT {fn}('[1, 2, 3]', ?)", (f32(1, 2, 3, 4),),
                  f"{fn}: dimension mismatch (3 vs 4)")
        fdb.fails(f"SELECT {fn}(?, '[1, 2, 3]')", (f32(1),),
                  f"{fn}: dimension mismatch (1 vs 3)")


def test_bad_numbers(fdb):
    fdb.fails("SELECT embed_scale('[1, 2]', 'x')", (), "embed_scale: the scale must be a number, got TEXT")
    fdb.fails("SELECT embed_scale('[1, 2]', ?)", (b"\x00",), "embed_scale: the scale must be a number, got BLOB")
    fdb.fails("SELECT embed_scale('[1, 2]', 1e999)", (), "embed_scale: the scale must be finite, got Inf")
    fdb.fails("SELECT embed_sum(v, 'x') FROM (SELECT '[1, 2]' AS v)", (),
              "embed_sum: the weight must be a number, got TEXT")
    fdb.fails("SELECT embed_sum(v, -1e999) FROM (SELECT '[1, 2]' AS v)", (),
              "embed_sum: the weight must be finite, got -Inf")


def test_results_that_overflow_are_errors(fdb):
    big = f32(3e38, 1)
    fdb.fails("SELECT embed_add(?, ?)", (big, big), "embed_add: result element 0 is not finite (overflow)")
    fdb.fails("SELECT embed_sub(?, ?)", (big, f32(-3e38, 1)), "embed_sub: result element 0 is not finite (overflow)")
    fdb.fails("SELECT embed_scale(?, 10)", (f32(1, 3e38),), "embed_scale: result element 1 is not finite (overflow)")
    fdb.fails("SELECT embed_sum(v) FROM (SELECT ? AS v UNION ALL SELECT ?)", (big, big),
              "embed_sum: result element 0 is not finite (overflow)")


# ------------------------------------------------------------- the table


def test_wrong_dimension_insert_and_update(fdb):
    fdb.fails("INSERT INTO tok(id, vector) VALUES (9, '[1, 2]')", (),
              "embedding tok: dimension mismatch (2 vs 3)")
    fdb.fails("INSERT INTO tok(id, vector) VALUES (9, ?)", (f32(1, 2, 3, 4),),
              "embedding tok: dimension mismatch (4 vs 3)")
    fdb.fails("UPDATE tok SET vector = '[1, 2, 3, 4, 5]' WHERE id = 2", (),
              "embedding tok: dimension mismatch (5 vs 3)")
    fdb.fails("UPDATE tok SET vector = '[1]'", (), "embedding tok: dimension mismatch (1 vs 3)")
    fdb.fails("SELECT id FROM tok WHERE vector MATCH '[1, 2]' AND k = 1", (),
              "embedding tok: dimension mismatch (2 vs 3)")


def test_bad_writes(fdb):
    fdb.fails("INSERT INTO tok(id) VALUES (1)", (), "UNIQUE constraint failed: tok.id")
    fdb.fails("INSERT INTO tok(id) VALUES ('abc')", (), "embedding tok: id must be an integer, got TEXT")
    fdb.fails("INSERT INTO tok(id) VALUES (1.5)", (), "embedding tok: id must be an integer, got REAL")
    fdb.fails("UPDATE tok SET vector = NULL WHERE id = 1", (), "NOT NULL constraint failed: tok.vector")
    fdb.fails("UPDATE tok SET id = NULL WHERE id = 1", (), "NOT NULL constraint failed: tok.id")
    fdb.fails("UPDATE tok SET id = 2 WHERE id = 1", (), "UNIQUE constraint failed: tok.id")
    fdb.fails("INSERT INTO tok(id, k) VALUES (9, 3)", (),
              "embedding tok: distance and k are search columns and cannot be written")
    fdb.fails("UPDATE tok SET distance = 1 WHERE id = 1", (),
              "embedding tok: distance and k are search columns and cannot be written")


def test_bad_searches(fdb):
    msg = fdb.fails("SELECT id FROM tok WHERE vector MATCH '[1, 2, 3]'")
    assert msg.startswith("embedding tok: a MATCH search needs k = N"), msg
    for k, shown in [(0, "0"), (-1, "-1"), (100001, "100001"), ("'x'", "x"), ("NULL", "NULL")]:
        fdb.fails(f"SELECT id FROM tok WHERE vector MATCH '[1, 2, 3]' AND k = {k}", (),
                  f"embedding tok: k must be an integer in [1, 100000], got {shown}")
    fdb.fails("SELECT id FROM tok WHERE vector MATCH NULL AND k = 1", (),
              "embedding tok: the MATCH query vector is NULL")


# ------------------------------------------------------- lookup and update


def test_unknown_id(fdb):
    fdb.fails("SELECT embed_lookup('tok', 99)", (), "embed_lookup: no id 99 in embedding tok")
    fdb.fails("SELECT embed_lookup(-5)", (), "embed_lookup: no id -5 in embedding tok")
    fdb.fails("SELECT embed_lookup('tok', '[1, 2, 77, 3]')", (), "embed_lookup: no id 77 in embedding tok")
    fdb.fails("SELECT embed_update('tok', 99, '[1, 1, 1]', 0.1)", (),
              "embed_update: no id 99 in embedding tok")
    fdb.fails("SELECT embed_update(99, '[1, 1, 1]', 0.1)", (),
              "embed_update: no id 99 in embedding tok")


def test_batch_with_one_unknown_id_changes_no_row(fdb):
    before = rows(fdb.conn, "tok")
    fdb.fails("SELECT embed_update('tok', '[1, 2, 99, 3]', ?, 0.5)", (to_blob(np.ones((4, 3))),),
              "embed_update: no id 99 in embedding tok")
    fdb.fails("SELECT embed_update('tok', '[99, 1]', '[[1, 1, 1], [1, 1, 1]]', 0.5)", (),
              "embed_update: no id 99 in embedding tok")
    after = rows(fdb.conn, "tok")
    assert all(np.array_equal(before[i], after[i]) for i in before)


def test_non_finite_gradients(fdb):
    fdb.fails("SELECT embed_update('tok', 1, ?, 0.1)", (nan_blob(3, 1, NAN),),
              "embed_update: element 1 is NaN")
    fdb.fails("SELECT embed_update('tok', 1, ?, 0.1)", (nan_blob(3, 2, -INF),),
              "embed_update: element 2 is -Inf")
    fdb.fails("SELECT embed_update('tok', 1, '[1, 1e39, 1]', 0.1)", (),
              "embed_update: element 1 is +Inf")
    # in a batch, the element index counts across the n x D gradients
    fdb.fails("SELECT embed_update('tok', '[1, 2]', ?, 0.1)", (nan_blob(6, 4, NAN),),
              "embed_update: element 4 is NaN")
    fdb.fails("SELECT embed_update('tok', '[1, 2]', '[[1, 2, 3], [4, 1e39, 5]]', 0.1)", (),
              "embed_update: element 4 is +Inf")


def test_bad_learning_rates(fdb):
    g = "[1, 1, 1]"
    # SQLite has no NaN value: a NaN parameter arrives as NULL
    fdb.fails("SELECT embed_update('tok', 1, ?, ?)", (g, NAN), "embed_update: lr must be a number, got NULL")
    fdb.fails("SELECT embed_update('tok', 1, ?, 1e999)", (g,), "embed_update: lr must be finite, got Inf")
    fdb.fails("SELECT embed_update('tok', 1, ?, -1e999)", (g,), "embed_update: lr must be finite, got -Inf")
    fdb.fails("SELECT embed_update('tok', 1, ?, ?)", (g, INF), "embed_update: lr must be finite, got Inf")
    fdb.fails("SELECT embed_update('tok', 1, ?, -0.1)", (g,), "embed_update: invalid learning rate -0.1")
    fdb.fails("SELECT embed_update('tok', 1, ?, -3)", (g,), "embed_update: invalid learning rate -3")
    fdb.fails("SELECT embed_update('tok', 1, ?, '0.5')", (g,), "embed_update: lr must be a number, got TEXT")
    fdb.fails("SELECT embed_update('tok', 1, ?, NULL)", (g,), "embed_update: lr must be a number, got NULL")


def test_step_that_overflows_changes_nothing(fdb):
    # row 4 is [3e38, 1, 1]
    before = rows(fdb.conn, "tok")
    fdb.fails("SELECT embed_update('tok', 4, '[-3e38, 0, 0]', 1)", (),
              "embed_update: the step makes element 0 of id 4 not finite; nothing was changed")
    fdb.fails("SELECT embed_update('tok', '[1, 2, 4, 3]', ?, 1)",
              (to_blob([[1, 1, 1], [1, 1, 1], [-3e38, 0, 0], [1, 1, 1]]),),
              "embed_update: the step makes element 0 of id 4 not finite; nothing was changed")
    # two halves that are fine alone overflow once summed
    fdb.fails("SELECT embed_update('tok', '[3, 4, 4]', ?, 1)",
              (to_blob([[1, 1, 1], [-2e38, 0, 0], [-2e38, 0, 0]]),),
              "embed_update: the step makes element 0 of id 4 not finite; nothing was changed")
    after = rows(fdb.conn, "tok")
    assert all(np.array_equal(before[i], after[i]) for i in before)


def test_gradient_dimension_mismatch(fdb):
    fdb.fails("SELECT embed_update('tok', 1, '[1, 2]', 0.1)", (),
              "embed_update: dimension mismatch (gradient 2 vs embedding tok 3)")
    fdb.fails("SELECT embed_update('tok', 1, ?, 0.1)", (f32(1, 2, 3, 4),),
              "embed_update: dimension mismatch (gradient 4 vs embedding tok 3)")


def test_batch_gradient_shape_errors(fdb):
    fdb.fails("SELECT embed_update('tok', '[1, 2]', ?, 0.1)", (b"\x00" * 20,),
              "embed_update: gradient BLOB has 20 bytes, expected 2 ids x 3 floats = 24")
    fdb.fails("SELECT embed_update('tok', '[1, 2]', ?, 0.1)", (f32(1, 2, 3),),
              "embed_update: gradient BLOB has 12 bytes, expected 2 ids x 3 floats = 24")
    fdb.fails("SELECT embed_update('tok', '[1, 2]', '[[1, 2, 3]]', 0.1)", (),
              "embed_update: gradients are 1 x 3, expected 2 ids x 3")
    fdb.fails("SELECT embed_update('tok', '[1, 2]', '[[1, 2], [3, 4]]', 0.1)", (),
              "embed_update: gradients are 2 x 2, expected 2 ids x 3")
    fdb.fails("SELECT embed_update('tok', '[1, 2]', '[[1, 2, 3], [1, 2]]', 0.1)", (),
              "embed_update: row 1 has 2 elements, expected 3")
    fdb.fails("SELECT embed_update('tok', '[1, 2]', '[[1, 2, 3], [1, 2, 3], [1, 2, 3]]', 0.1)", (),
              "embed_update: gradients have more than 2 ids x 3 floats")
    fdb.fails("SELECT embed_update('tok', '[1, 2]', '[1, 2, 3, 4, 5, 6]', 0.1)", (),
              "embed_update: malformed JSON vector at offset 1 (expected '[')")
    fdb.fails("SELECT embed_update('tok', '[1, 2]', 5, 0.1)", (),
              "embed_update: gradients must be a BLOB of n x D float32 or a JSON array "
              "of arrays, got INTEGER")
    fdb.fails("SELECT embed_update('tok', 1, NULL, 0.1)", (), "embed_update: gradient is NULL")


def test_bad_ids(fdb):
    g = "[1, 1, 1]"
    for fn, extra in [("embed_lookup", ""), ("embed_update", f", '{g}', 0.1")]:
        fdb.fails(f"SELECT {fn}('tok', 1.0{extra})", (),
                  f"{fn}: id must be an INTEGER or a JSON array of ids, got REAL")
        fdb.fails(f"SELECT {fn}('tok', x'01'{extra})", (),
                  f"{fn}: id must be an INTEGER or a JSON array of ids, got BLOB")
        fdb.fails(f"SELECT {fn}('tok', '[]'{extra})", (), f"{fn}: empty id array")
        fdb.fails(f"SELECT {fn}('tok', '[1, 2.5]'{extra})", (),
                  f"{fn}: id 1 of the JSON array is not a 64-bit integer")
        fdb.fails(f"SELECT {fn}('tok', '[1, 99999999999999999999]'{extra})", (),
                  f"{fn}: id 1 of the JSON array is not a 64-bit integer")
        fdb.fails(f"SELECT {fn}('tok', '[1, \"a\"]'{extra})", (),
                  f"{fn}: malformed JSON id array at offset 4 (expected a number)")
        fdb.fails(f"SELECT {fn}('tok', 'abc'{extra})", (),
                  f"{fn}: malformed JSON id array at offset 0 (expected '[')")
    fdb.fails("SELECT embed_update('tok', NULL, '[1, 1, 1]', 0.1)", (), "embed_update: id is NULL")


def test_bad_table_arguments(fdb):
    fdb.fails("SELECT embed_lookup('nope', 1)", (), "embed_lookup: no embedding table named 'nope'")
    fdb.fails("SELECT embed_lookup('x', 1)", (), "embed_lookup: no embedding table named 'x'")
    fdb.fails("SELECT embed_lookup('tok_vectors', 1)", (), "embed_lookup: no embedding table named 'tok_vectors'")
    fdb.fails("SELECT embed_update('x', 1, '[1, 1, 1]', 0.1)", (),
              "embed_update: no embedding table named 'x'")
    fdb.fails("SELECT embed_lookup(3, 1)", (), "embed_lookup: the table name must be TEXT, got INTEGER")
    fdb.fails("SELECT embed_update(NULL, 1, '[1, 1, 1]', 0.1)", (),
              "embed_update: the table name must be TEXT, got NULL")


# --------------------------------------------------------- CREATE options

BAD_OPTIONS = [
    ("", "missing required option 'dim'"),
    ("num_embeddings=3", "missing required option 'dim'"),
    ("dim=3, foo=1", "unknown option 'foo'"),
    ("dim=3, dim=4", "option 'dim' given twice"),
    ("dim=3, embedding_dim=4", "option 'embedding_dim' given twice"),
    ("dim=3, seed=1, SEED=2", "option 'SEED' given twice"),
    ("dim=0", "dim must be an integer in [1, 65536], got '0'"),
    ("dim=65537", "dim must be an integer in [1, 65536], got '65537'"),
    ("dim=-1", "dim must be an integer in [1, 65536], got '-1'"),
    ("dim=abc", "dim must be an integer in [1, 65536], got 'abc'"),
    ("dim=2.5", "dim must be an integer in [1, 65536], got '2.5'"),
    ("dim", "malformed option 'dim' (expected key=value)"),
    ("dim=3, =4", "malformed option '=4' (expected key=value)"),
    ("dim=3, init=xavier", "init must be normal, uniform or zeros, got 'xavier'"),
    ("dim=3, metric=manhattan", "metric must be cosine, l2 or dot, got 'manhattan'"),
    ("dim=3, num_embeddings=-1", "num_embeddings must be an integer in [0, 1000000000], got '-1'"),
    ("dim=3, seed=abc", "seed must be a 64-bit integer, got 'abc'"),
    ("dim=3, seed=99999999999999999999", "seed must be a 64-bit integer, got '99999999999999999999'"),
    ("dim=3, max_norm=0", "max_norm must be a positive number, got '0'"),
    ("dim=3, max_norm=-1", "max_norm must be a positive number, got '-1'"),
    ("dim=3, norm_type=0", "norm_type must be a positive number or inf, got '0'"),
    ("dim=3, scale_grad_by_freq=yes", "scale_grad_by_freq must be true, false, 1 or 0, got 'yes'"),
    ("dim=3, optimizer=rmsprop", "optimizer must be sgd, adagrad or adam, got 'rmsprop'"),
    ("dim=3, padding_idx=-1", "a negative padding_idx needs num_embeddings"),
    ("dim=3, padding_idx=abc", "padding_idx must be an integer, got 'abc'"),
    # the index (README "Approximate search")
    ("dim=3, index=hnsw", "index must be none or ivf, got 'hnsw'"),
    ("dim=3, nlist=10", "option 'nlist' needs index=ivf"),
    ("dim=3, oversample=2", "option 'oversample' needs index=ivf"),
    ("dim=3, index=ivf, nlist=-1", "nlist must be an integer in [0, 1048576], got '-1'"),
    ("dim=3, index=ivf, nprobe=x", "nprobe must be an integer in [0, 1048576], got 'x'"),
    ("dim=3, index=ivf, oversample=0", "oversample must be an integer in [1, 1048576], got '0'"),
    # optimizer hyperparameters (PyTorch's names)
    ("dim=3, optimizer=adam, momentum=0.9", "option 'momentum' does not apply to optimizer=adam"),
    ("dim=3, optimizer=sgd, betas=(0.9, 0.99)", "option 'betas' does not apply to optimizer=sgd"),
    ("dim=3, optimizer=adam, betas=(1, 0.9)", "betas must be two numbers in [0, 1), got '(1, 0.9)'"),
    ("dim=3, optimizer=adam, betas=0.9", "betas must be (beta1, beta2), got '0.9'"),
    ("dim=3, optimizer=sgd, nesterov=1", "nesterov momentum requires a momentum and zero dampening"),
    ("dim=3, optimizer=sgd, momentum=-1", "momentum must be a non-negative number, got '-1'"),
    ("dim=3, optimizer=adagrad, eps=-1", "eps must be a positive number, got '-1'"),
    ("dim=3, optimizer=adagrad, lr_decay=-1", "lr_decay must be a non-negative number, got '-1'"),
    ("dim=3, optimizer=sgd, maximize=2", "maximize must be true, false, 1 or 0, got '2'"),
]


@pytest.mark.parametrize("opts,problem", BAD_OPTIONS)
def test_bad_create_options(fdb, opts, problem):
    fdb.fails(f"CREATE VIRTUAL TABLE t USING embedding({opts})", (), f"embedding t: {problem}")
    assert fdb.conn.execute("SELECT count(*) FROM sqlite_schema WHERE name LIKE 't%' "
                            "AND name NOT LIKE 'tok%'").fetchone()[0] == 0


def test_padding_idx_out_of_range(fdb):
    for padding_idx in (5, 7, -6):
        msg = fdb.fails(f"CREATE VIRTUAL TABLE t USING embedding(dim=3, num_embeddings=5, "
                        f"padding_idx={padding_idx})")
        assert msg.startswith("embedding t: padding_idx"), msg
        assert "num_embeddings (5)" in msg, msg
        # messages name the values, here the padding_idx given
        assert str(padding_idx) in msg.replace("(5)", ""), msg


def test_batch_lookup_over_the_length_limit(fdb):
    import sqlite3
    fdb.conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1000)
    assert len(fdb.conn.execute("SELECT embed_lookup('tok', ?)", (json.dumps([1] * 83),)).fetchone()[0]) == 996
    fdb.fails("SELECT embed_lookup('tok', ?)", (json.dumps([1] * 84),),
              "embed_lookup: 84 x 3 floats exceed SQLite's length limit")


def test_a_locked_database_changes_nothing(fdb):
    """A step that cannot commit (another connection is reading) is an error
    and leaves every row as it was."""
    reader = connect(fdb.path)
    fdb.conn.execute("PRAGMA busy_timeout = 0")
    before = rows(fdb.conn, "tok")
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM tok").fetchall()
    try:
        msg = fdb.fails("SELECT embed_update('tok', '[1, 2]', '[[1, 1, 1], [1, 1, 1]]', 1)")
        assert msg.startswith("embed_update: database is locked"), msg
        msg = fdb.fails("SELECT embed_update('tok', 3, '[1, 1, 1]', 1)")
        assert msg == "embed_update: database is locked; nothing was changed", msg
        fdb.fails("UPDATE tok SET vector = '[5, 5, 5]' WHERE id = 1", (), "database is locked")
        fdb.fails("INSERT INTO tok(id) VALUES (10), (11)", (), "database is locked")
    finally:
        reader.execute("COMMIT")
        reader.close()
    after = rows(fdb.conn, "tok")
    assert sorted(after) == sorted(before)
    assert all(np.array_equal(before[i], after[i]) for i in before)


def test_too_many_rows_at_create(fdb):
    fdb.fails("CREATE VIRTUAL TABLE t USING embedding(dim=65536, num_embeddings=1048577)", (),
              "embedding t: num_embeddings=1048577 x dim=65536 is over the limit of 2^36 floats")


# ------------------------------------------------------- hostile names

HOSTILE = ['we"ird; DROP TABLE x; --', "it's", "a.b", "main.c", "[br]acket",
           "sp ace", "ünï ☃", "x'); DROP TABLE x; --", '"', "embedding"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_table_names(fdb, name):
    conn, q = fdb.conn, qident(name)
    base = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_schema"))
    conn.execute(f"CREATE VIRTUAL TABLE {q} USING embedding(dim=2, num_embeddings=3, seed=5)")
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_schema")]
    assert name in names
    shadows = [n for n in names if n.startswith(name + "_")]
    assert shadows, names
    assert conn.execute("SELECT count(*) FROM x").fetchone()[0] == 1
    assert [r[0] for r in conn.execute(f"SELECT id FROM {q}")] == [0, 1, 2]
    conn.execute(f"INSERT INTO {q}(id, vector) VALUES (7, '[1, 2]')")
    conn.execute(f"UPDATE {q} SET vector = '[3, 4]' WHERE id = 7")
    assert conn.execute(f"SELECT vector FROM {q} WHERE id = 7").fetchone()[0] == f32(3, 4)
    assert conn.execute("SELECT embed_lookup(?, 7)", (name,)).fetchone()[0] == f32(3, 4)
    assert conn.execute("SELECT embed_lookup(?, '[7, 7]')", (name,)).fetchone()[0] == f32(3, 4, 3, 4)
    assert conn.execute("SELECT embed_update(?, 7, '[1, 1]', 1)", (name,)).fetchone()[0] == 1
    assert conn.execute("SELECT embed_update(?, '[7]', '[[1, 1]]', 1)", (name,)).fetchone()[0] == 1
    assert conn.execute(f"SELECT vector FROM {q} WHERE id = 7").fetchone()[0] == f32(1, 2)
    assert conn.execute(f"SELECT id FROM {q} WHERE vector MATCH '[1, 2]' AND k = 1").fetchone()[0] == 7
    assert conn.execute(f"SELECT embed_update(id, '[1, 1]', 1) FROM {q} WHERE id = 7").fetchone()[0] == 1
    # errors name the table as it is
    fdb.fails("SELECT embed_lookup(?, 99)", (name,), f"embed_lookup: no id 99 in embedding {name}")
    fdb.fails("SELECT embed_update(?, 99, '[1, 1]', 1)", (name,), f"embed_update: no id 99 in embedding {name}")
    fdb.fails(f"INSERT INTO {q}(id, vector) VALUES (8, '[1]')", (),
              f"embedding {name}: dimension mismatch (1 vs 2)")
    fdb.fails(f"INSERT INTO {q}(id) VALUES (7)", (), f"UNIQUE constraint failed: {name}.id")
    # rename and drop clean up every shadow table
    conn.execute(f"ALTER TABLE {q} RENAME TO {qident(name + '2')}")
    assert conn.execute("SELECT embed_lookup(?, 7)", (name + "2",)).fetchone()[0] == f32(0, 1)
    conn.execute(f"DROP TABLE {qident(name + '2')}")
    assert sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_schema")) == base
    assert conn.execute("SELECT count(*) FROM x").fetchone()[0] == 1


@pytest.mark.parametrize("name", ['x"; DROP TABLE x; --', "x'; DROP TABLE x; --",
                                  "tok; DROP TABLE x", "main.x", "nope.tok", ""])
def test_hostile_names_that_are_not_tables(fdb, name):
    fdb.fails("SELECT embed_lookup(?, 1)", (name,), f"embed_lookup: no embedding table named '{name}'")
    fdb.fails("SELECT embed_update(?, 1, '[1, 1, 1]', 1)", (name,),
              f"embed_update: no embedding table named '{name}'")
    assert fdb.conn.execute("SELECT count(*) FROM x").fetchone()[0] == 1


def test_schema_qualified_names(fdb):
    conn = fdb.conn
    w = conn.execute("SELECT vector FROM tok WHERE id = 2").fetchone()[0]
    assert conn.execute("SELECT embed_lookup('main.tok', 2)").fetchone()[0] == w
    conn.execute('CREATE VIRTUAL TABLE "main.tok" USING embedding(dim=2, num_embeddings=3)')
    # a table literally named "main.tok" is found by its own name
    assert len(conn.execute("SELECT embed_lookup('main.tok', 2)").fetchone()[0]) == 8
    assert conn.execute("SELECT embed_lookup('tok', 2)").fetchone()[0] == w


# --------------------------------------------------------------- DIRECTONLY


def test_embed_update_is_refused_in_a_trigger(fdb):
    conn = fdb.conn
    conn.execute("CREATE TABLE log(id)")
    conn.execute("CREATE TRIGGER tr AFTER INSERT ON log BEGIN "
                 "SELECT embed_update('tok', new.id, '[1, 1, 1]', 0.1); END")
    fdb.fails("INSERT INTO log VALUES (1)", (), "unsafe use of embed_update()")
    conn.execute("DROP TRIGGER tr")
    conn.execute("CREATE TRIGGER tr AFTER INSERT ON log BEGIN "
                 "SELECT embed_update(id, '[1, 1, 1]', 0.1) FROM tok WHERE id = new.id; END")
    fdb.fails("INSERT INTO log VALUES (1)", (), "unsafe use of embed_update()")
    conn.execute("DROP TRIGGER tr")
    conn.execute("CREATE TRIGGER tr AFTER INSERT ON log BEGIN "
                 "SELECT embed_update(new.id, '[1, 1, 1]', 0.1); END")
    fdb.fails("INSERT INTO log VALUES (1)", (), "unsafe use of embed_update()")


def test_embed_update_is_refused_in_a_view(fdb):
    conn = fdb.conn
    conn.execute("CREATE VIEW v AS SELECT embed_update('tok', 1, '[1, 1, 1]', 0.1) AS r")
    fdb.fails("SELECT * FROM v", (), "unsafe use of embed_update()")
    conn.execute("CREATE VIEW v2 AS SELECT embed_update(id, '[1, 1, 1]', 0.1) AS r FROM tok")
    fdb.fails("SELECT * FROM v2", (), "unsafe use of embed_update()")


def test_embed_update_is_refused_in_the_schema(fdb):
    conn = fdb.conn
    conn.execute("CREATE TABLE d(a DEFAULT (embed_update('tok', 1, '[1, 1, 1]', 0.1)), b)")
    conn.close()
    conn = connect(fdb.path)
    before = file_hash(fdb.path)
    with pytest.raises(Exception) as info:
        conn.execute("INSERT INTO d(b) VALUES (1)")
    assert str(info.value) == "unsafe use of embed_update()"
    assert file_hash(fdb.path) == before
    with pytest.raises(Exception) as info:
        conn.execute("CREATE INDEX i ON d(embed_update('tok', 1, '[1, 1, 1]', 0.1))")
    # SQLite 3.40 names the missing DETERMINISTIC flag; later releases the
    # DIRECTONLY one: either way the index is refused
    assert str(info.value) in ("non-deterministic functions prohibited in index expressions",
                               "unsafe use of embed_update()")
    assert file_hash(fdb.path) == before
    conn.close()
