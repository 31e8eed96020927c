"""embed_save(path, 'npy', token, vector): a float32 (n, D) .npy that
numpy.load reads back bit-exact, rows in the order given, token ignored,
written atomically (README: Files: word2vec, GloVe, fastText, npy).

numpy is the reference: the file must equal, byte for byte, what np.save
writes for the same array, and load (also memory-mapped) to the same bits."""
import io
import json
import os

import numpy as np
import pytest

from conftest import error_of, to_blob


def tricky(rng, n, dim):
    """Random rows with subnormals, signed zeros and extremes mixed in."""
    v = rng.standard_normal((n, dim)).astype(np.float32)
    special = np.array([0.0, -0.0, 1e-45, -1e-40, 3.4028235e38, -3.4028235e38,
                        1.17549435e-38, 1.0, 0.1, -7e-10], dtype=np.float32)
    flat = v.reshape(-1)
    flat[: min(special.size, flat.size)] = special[: flat.size]
    return v


def np_save_bytes(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def fill(db, name, array, ids=None):
    n, dim = array.shape
    db.execute(f"CREATE VIRTUAL TABLE {name} USING embedding(dim={dim})")
    ids = list(range(n)) if ids is None else ids
    db.executemany(f"INSERT INTO {name}(id, vector) VALUES (?, ?)",
                   [(int(i), to_blob(r)) for i, r in zip(ids, array)])


@pytest.mark.parametrize("n,dim", [(1, 1), (7, 3), (1000, 64), (2, 65536)])
def test_npy_round_trip_is_bit_exact_and_numpys_own_bytes(db, tmp_path, rng,
                                                          n, dim):
    w = tricky(rng, n, dim)
    fill(db, "e", w)
    path = str(tmp_path / "w.npy")
    got = db.execute("SELECT embed_save(?, 'npy', id, vector) FROM "
                     "(SELECT id, vector FROM e ORDER BY id)", (path,)).fetchone()
    assert got == (n,)
    back = np.load(path)
    assert back.dtype == np.dtype("<f4") and back.shape == (n, dim)
    assert back.tobytes() == w.tobytes()  # bit-exact, -0.0 and subnormals too
    assert open(path, "rb").read() == np_save_bytes(w)
    mapped = np.load(path, mmap_mode="r")  # the data is 64-byte aligned
    assert np.array_equal(mapped.view(np.uint32), w.view(np.uint32))


def test_npy_rows_in_the_order_given_and_tokens_ignored(db, tmp_path, rng):
    w = rng.standard_normal((50, 5)).astype(np.float32)
    ids = rng.permutation(1000)[:50] * 7 - 3000  # sparse, negative ids too
    fill(db, "e", w, ids)
    order = rng.permutation(50)
    db.execute("CREATE TABLE pick(pos INTEGER PRIMARY KEY, id INTEGER)")
    db.executemany("INSERT INTO pick VALUES (?, ?)",
                   [(p, int(ids[i])) for p, i in enumerate(order)])
    path = str(tmp_path / "o.npy")
    # the token is any value: an integer id, NULL, text with blanks, a BLOB
    for token in ("id", "NULL", "'new york'", "x'00ff'"):
        assert db.execute(
            f"SELECT embed_save(?, 'npy', {token}, vector) FROM (SELECT e.id, "
            "e.vector FROM pick JOIN e USING (id) ORDER BY pick.pos)",
            (path,)).fetchone() == (50,)
        assert np.load(path).tobytes() == w[order].tobytes()
    # embed_file reads it back: n is the row's position, token NULL
    rows = db.execute("SELECT n, token, vector FROM embed_file(?)",
                      (path,)).fetchall()
    assert [r[0] for r in rows] == list(range(50))
    assert all(r[1] is None for r in rows)
    assert b"".join(r[2] for r in rows) == w[order].tobytes()


def test_npy_ids_kept_beside_the_array(db, tmp_path, rng):
    """The README's recipe for a table whose ids are not 0..n-1: the array
    from embed_save, the ids in the same order from json_group_array."""
    w = rng.standard_normal((20, 4)).astype(np.float32)
    ids = sorted(int(i) for i in rng.choice(10**6, 20, replace=False))
    fill(db, "e", w, ids)
    path = str(tmp_path / "w.npy")
    db.execute("SELECT embed_save(?, 'npy', id, vector) FROM "
               "(SELECT id, vector FROM e ORDER BY id)", (path,))
    got_ids = db.execute("SELECT json_group_array(id) FROM "
                         "(SELECT id FROM e ORDER BY id)").fetchone()[0]
    assert json.loads(got_ids) == ids
    assert np.load(path).tobytes() == w.tobytes()


def test_npy_no_rows_writes_nothing(db, tmp_path):
    db.execute("CREATE VIRTUAL TABLE e USING embedding(dim=3)")
    path = tmp_path / "none.npy"
    assert db.execute("SELECT embed_save(?, 'npy', id, vector) FROM e",
                      (str(path),)).fetchone() == (0,)
    assert not path.exists()


NPY_ERRORS = [
    ("dimension-change", ["'[1, 2]'", "'[1, 2]'", "'[1, 2, 3]'"],
     "embed_save: dimension mismatch at row 2 (3 vs 2)"),
    ("null-vector", ["'[1, 2]'", "NULL"], "embed_save: NULL vector at row 1"),
    ("nan-vector", ["'[1]'", "x'0000c07f'"], "embed_save: element 0 is NaN"),
    ("bad-blob", ["x'000000'"],
     "embed_save: BLOB length 3 is not a multiple of 4 (float32)"),
]


@pytest.mark.parametrize("name,vectors,message", NPY_ERRORS,
                         ids=[e[0] for e in NPY_ERRORS])
def test_npy_error_leaves_the_target_untouched(db, tmp_path, name, vectors,
                                               message):
    path = tmp_path / "target.npy"
    before = np_save_bytes(np.ones((2, 2), np.float32))
    path.write_bytes(before)
    values = ", ".join(f"({i}, {v})" for i, v in enumerate(vectors))
    sql = (f"WITH s(i, v) AS (VALUES {values}) "
           "SELECT embed_save(?, 'npy', i, v) FROM (SELECT * FROM s ORDER BY i)")
    assert error_of(db, sql, (str(path),)) == message
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["target.npy"]  # no temporary file left


def test_npy_replaces_atomically_and_keeps_a_symlink(db, tmp_path, rng):
    w = rng.standard_normal((3, 2)).astype(np.float32)
    fill(db, "e", w)
    real = tmp_path / "real.npy"
    real.write_bytes(b"old")
    link = tmp_path / "link.npy"
    link.symlink_to(real)
    db.execute("SELECT embed_save(?, 'npy', id, vector) FROM "
               "(SELECT id, vector FROM e ORDER BY id)", (str(link),))
    assert link.is_symlink()
    assert np.load(real).tobytes() == w.tobytes()
    assert sorted(os.listdir(tmp_path)) == ["link.npy", "real.npy"]
