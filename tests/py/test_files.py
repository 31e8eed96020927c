"""embed_file and embed_save: embedding files in and out (README: Files:
word2vec, GloVe, fastText, npy).

Every format is read from files written by another implementation (gensim's
KeyedVectors.save_word2vec_format, numpy's np.save, and for the C tool's
binary layout a byte-level writer here); every file embed_save writes is read
back by gensim bit-exact; every malformed-file case has its exact message.
gensim is Debian's python3-gensim (tests/install-deps.sh installs it).
"""
import os
import sqlite3
import struct

import numpy as np
import pytest
from gensim.models import KeyedVectors

from conftest import TESTS, connect, error_of, from_blob, to_blob

# Tokens a real vocabulary has: UTF-8, punctuation, digits, emoji.
TOKENS = ["the", "naïve", "日本語", "can't", "U.S.", "<unk>", "e-mail", "!!!",
          "1990", "😀", "Zürich", "--", "a.b,c;d", "</s>", "x"]


def tricky_vectors(rng, n, dim):
    """Random float32 rows with hard cases mixed in: tiny, huge, subnormal,
    negative zero, exact integers."""
    v = rng.standard_normal((n, dim)).astype(np.float32)
    special = np.array([0.0, -0.0, 1e-45, -1e-40, 3.4028235e38, -1.17549435e-38,
                        1.0, -2.5, 123456.789, 1e-7, 0.1, 7e-10],
                       dtype=np.float32)
    flat = v.reshape(-1)
    flat[: min(len(special), flat.size)] = special[: flat.size]
    return v


def gensim_kv(tokens, vectors):
    kv = KeyedVectors(vectors.shape[1])
    kv.add_vectors(list(tokens), vectors)
    return kv


def read(db, path, fmt=None):
    """[(n, token, vector)] of embed_file(path [, fmt])."""
    if fmt is None:
        cur = db.execute("SELECT n, token, vector FROM embed_file(?)", (path,))
    else:
        cur = db.execute("SELECT n, token, vector FROM embed_file(?, ?)",
                         (path, fmt))
    return [(n, t, from_blob(v)) for n, t, v in cur]


def matrix(rows):
    return np.stack([v for _, _, v in rows])


def detected(db, path):
    return db.execute("SELECT DISTINCT format FROM embed_file(?)",
                      (path,)).fetchall()


def write_c_binary(path, tokens, vectors, newline=True, header=None):
    """The word2vec C tool's binary layout: header, then token, space, raw
    float32, newline (the C tool writes it; gensim does not)."""
    with open(path, "wb") as f:
        n, d = vectors.shape
        f.write((header or f"{n} {d}\n").encode())
        for t, v in zip(tokens, vectors):
            f.write(t.encode() + b" " + v.astype("<f4").tobytes())
            if newline:
                f.write(b"\n")


# --------------------------------------------------------------- reading


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_word2vec_written_by_gensim_is_read_bit_exact(db, tmp_path, rng, binary):
    vecs = tricky_vectors(rng, len(TOKENS), 9)
    path = str(tmp_path / ("g.bin" if binary else "g.txt"))
    gensim_kv(TOKENS, vecs).save_word2vec_format(path, binary=binary)
    for fmt in (None, "word2vec-binary" if binary else "word2vec"):
        rows = read(db, path, fmt)
        assert [t for _, t, _ in rows] == TOKENS
        assert [n for n, _, _ in rows] == list(range(len(TOKENS)))
        assert matrix(rows).tobytes() == vecs.tobytes()
    assert detected(db, path) == [("word2vec-binary" if binary else "word2vec",)]


def test_fasttext_vec_is_word2vec_text(db, tmp_path, rng):
    vecs = tricky_vectors(rng, len(TOKENS), 5)
    path = str(tmp_path / "wiki.vec")
    gensim_kv(TOKENS, vecs).save_word2vec_format(path)
    rows = read(db, path, "fasttext")
    assert [t for _, t, _ in rows] == TOKENS
    assert matrix(rows).tobytes() == vecs.tobytes()
    assert db.execute("SELECT DISTINCT format FROM embed_file(?, 'FastText')",
                      (path,)).fetchall() == [("fasttext",)]


def test_glove_written_by_gensim_without_header(db, tmp_path, rng):
    vecs = tricky_vectors(rng, len(TOKENS), 6)
    path = str(tmp_path / "glove.txt")
    gensim_kv(TOKENS, vecs).save_word2vec_format(path, write_header=False)
    for fmt in (None, "glove"):
        rows = read(db, path, fmt)
        assert [t for _, t, _ in rows] == TOKENS
        assert matrix(rows).tobytes() == vecs.tobytes()
    assert detected(db, path) == [("glove",)]


@pytest.mark.parametrize("newline", [True, False], ids=["c-tool", "no-newline"])
def test_word2vec_binary_with_and_without_newlines(db, tmp_path, rng, newline):
    vecs = tricky_vectors(rng, len(TOKENS), 4)
    path = str(tmp_path / "c.bin")
    write_c_binary(path, TOKENS, vecs, newline=newline)
    rows = read(db, path)
    assert [t for _, t, _ in rows] == TOKENS
    assert matrix(rows).tobytes() == vecs.tobytes()
    # gensim reads the same file to the same vectors
    kv = KeyedVectors.load_word2vec_format(path, binary=True)
    assert kv.vectors.tobytes() == matrix(rows).tobytes()


@pytest.mark.parametrize("dtype", ["<f4", "<f8"])
def test_npy_written_by_numpy(db, tmp_path, rng, dtype):
    a = (rng.standard_normal((7, 5)) * 10).astype(dtype)
    a[0, 0] = 1e-300 if dtype == "<f8" else 1e-45  # underflows to (sub)normal
    path = str(tmp_path / "w.npy")
    np.save(path, a)
    for fmt in (None, "npy"):
        rows = read(db, path, fmt)
        assert [n for n, _, _ in rows] == list(range(7))
        assert all(t is None for _, t, _ in rows)
        assert matrix(rows).tobytes() == a.astype("<f4").tobytes()
    assert detected(db, path) == [("npy",)]


def test_npy_format_version_2(db, tmp_path, rng):
    a = rng.standard_normal((3, 4)).astype("<f4")
    path = str(tmp_path / "v2.npy")
    with open(path, "wb") as f:
        np.lib.format.write_array(f, a, version=(2, 0))
    assert matrix(read(db, path)).tobytes() == a.tobytes()


def test_npy_empty_array_gives_no_rows(db, tmp_path):
    path = str(tmp_path / "e.npy")
    np.save(path, np.zeros((0, 3), dtype="<f4"))
    assert read(db, path) == []


def test_duplicate_tokens_first_wins_as_gensim(db, tmp_path, rng):
    tokens = ["a", "b", "a", "c", "b"]
    vecs = rng.standard_normal((5, 3)).astype(np.float32)
    path = str(tmp_path / "dup.txt")
    with open(path, "w") as f:  # gensim's add_vectors would dedupe itself
        f.write("5 3\n")
        for t, v in zip(tokens, vecs):
            f.write(t + " " + " ".join(repr(float(x)) for x in v) + "\n")
    rows = read(db, path)
    assert [(n, t) for n, t, _ in rows] == [(0, "a"), (1, "b"), (3, "c")]
    kv = KeyedVectors.load_word2vec_format(path)
    # (gensim 4.2 leaves None placeholders in index_to_key for duplicates)
    assert matrix(rows).tobytes() == np.stack([kv[t] for t in "abc"]).tobytes()
    assert matrix(rows).tobytes() == vecs[[0, 1, 3]].tobytes()


def test_text_variants_crlf_bom_tabs_trailing_blanks_no_final_newline(db, tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"\xef\xbb\xbf2 3\r\n"
                     b"x\t1 2\t 3 \r\n"    # tabs, runs of blanks
                     b"y 4 5 6 ")           # trailing blank, no newline
    rows = read(db, str(path))
    assert [(t, v.tolist()) for _, t, v in rows] == [("x", [1, 2, 3]),
                                                     ("y", [4, 5, 6])]
    # trailing blank lines are fine
    path.write_bytes(b"a 1 2\nb 3 4\n\n\n")
    assert [t for _, t, _ in read(db, str(path))] == ["a", "b"]


def test_numbers_every_spelling_and_bit_exact_rounding(db, tmp_path, rng):
    texts = ["1", "-1", "+1", ".5", "5.", "-0", "0.0", "1e3", "1E-3", "-2.5e+2",
             "0.1", "3.4028235e38", "1.4e-45", "1e-46", "7.006492321624085e-46",
             "123456789012345678901234567890", "0.000000000000000000000000001",
             "1.00000005960464477539062500001", "16777217", "0.30000001192092896"]
    scale = 10.0 ** rng.integers(-30, 30, 200)
    texts += [repr(float(x)) for x in rng.standard_normal(200) * scale]
    path = tmp_path / "nums.txt"
    path.write_text("".join(f"t{i} {s}\n" for i, s in enumerate(texts)))
    got = [v[0] for _, _, v in read(db, str(path), "glove")]
    # the reference: C's strtof, which rounds the decimal directly to float32
    import ctypes
    libc = ctypes.CDLL(None)
    libc.strtof.restype = ctypes.c_float
    libc.strtof.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    want = [np.float32(libc.strtof(s.encode(), None)) for s in texts]
    assert np.array(got, dtype=np.float32).tobytes() == \
        np.array(want, dtype=np.float32).tobytes()


def test_streams_files_larger_than_its_buffer(db, tmp_path, rng):
    # 6000 x 64 text (~5 MB) and binary, beyond the 1 MiB read buffer
    tokens = [f"w{i}" for i in range(6000)]
    vecs = rng.standard_normal((6000, 64)).astype(np.float32)
    kv = gensim_kv(tokens, vecs)
    for binary in (False, True):
        path = str(tmp_path / f"big{binary}")
        kv.save_word2vec_format(path, binary=binary)
        assert os.path.getsize(path) > 1 << 20
        rows = read(db, path)
        assert [t for _, t, _ in rows] == tokens
        assert matrix(rows).tobytes() == vecs.tobytes()


def test_a_line_longer_than_the_read_buffer(db, tmp_path):
    # dim 65536 (the limit) with long numbers: a 1.4 MB line
    dim = 65536
    path = tmp_path / "long.txt"
    path.write_text("big " + " ".join(["0.1234567890123456789"] * dim) + "\n"
                    "small " + " ".join(["1"] * dim) + "\n")
    rows = read(db, str(path))
    assert len(rows) == 2 and rows[0][2].shape == (dim,)
    assert rows[0][2][0] == np.float32(0.1234567890123456789)
    assert float(rows[1][2].sum()) == dim


def test_columns_path_format_rowid_order_and_joins(db, tmp_path):
    path = str(tmp_path / "v.txt")
    with open(path, "w") as f:
        f.write("2 2\ncat 1 2\ndog 3 4\n")
    assert db.execute("SELECT rowid, n, token, path, format FROM embed_file(?)",
                      (path,)).fetchall() == [
        (0, 0, "cat", path, "word2vec"), (1, 1, "dog", path, "word2vec")]
    assert db.execute("SELECT token FROM embed_file(?) ORDER BY n DESC",
                      (path,)).fetchall() == [("dog",), ("cat",)]
    assert db.execute("SELECT token FROM embed_file WHERE path = ? AND n = 1",
                      (path,)).fetchall() == [("dog",)]
    db.execute("CREATE TABLE files(p TEXT)")
    db.execute("INSERT INTO files VALUES (?)", (path,))
    assert db.execute("SELECT count(*) FROM files, embed_file(files.p)"
                      ).fetchone() == (2,)
    assert db.execute("SELECT embed_json(vector) FROM embed_file(?) "
                      "WHERE token = 'dog'", (path,)).fetchall() == [("[3,4]",)]


# ------------------------------------------------------- malformed files

# (name, bytes, format or None, message after "embed_file: 'PATH' ")
MALFORMED = [
    ("count-over-body", b"3 2\nalpha 1 2\nbeta 3 4\n", None,
     "line 4: unexpected end of file: 2 of the header's 3 vectors read"),
    ("count-under-body", b"1 2\na 1 2\nb 3 4\n", None,
     "line 3: more vectors than the header's count (1)"),
    ("dim-under-header", b"2 3\nalpha 1 2 3\nbeta 3 4\n", None,
     "line 3: expected 3 values, found 2 (the header's dim)"),
    ("dim-over-header", b"2 2\na 1 2 3\nb 3 4\n", None,
     "line 2: expected 2 values, found 3 (the header's dim)"),
    ("glove-dim-mid-file", b"a 1 2\nb 3 4\nc 5 6 7\n", None,
     "line 3: expected 2 values, found 3 (as on line 1)"),
    ("nan", b"a 1 2\nb 3 nan\n", None, "line 2: element 1 is NaN"),
    ("inf", b"1 2\na Inf 2\n", None, "line 2: element 0 is +Inf"),
    ("minus-infinity", b"a -infinity 2\n", "glove", "line 1: element 0 is -Inf"),
    ("beyond-float32", b"a 1 1e39\n", None,
     "line 1: element 1 (1e39) is beyond float32"),
    ("malformed-number", b"a 1 2\nb 1.2.3 4\n", None,
     "line 2: malformed number '1.2.3' (element 0)"),
    ("comma-decimal", b"a 1,5 2\n", None,
     "line 1: malformed number '1,5' (element 0)"),
    ("hex-float", b"a 0x1p3 2\n", None,
     "line 1: malformed number '0x1p3' (element 0)"),
    ("blank-line-between", b"a 1 2\n\nb 3 4\n", None,
     "line 2: blank line between entries"),
    ("empty-token", b"1 2\n 1 2\n", None,
     "line 2: empty token (the line starts with a blank)"),
    ("token-not-utf8", b"a 1 2\n\xff\xfe 3 4\n", None,
     "line 2: token is not valid UTF-8"),
    ("no-values", b"lonely\n", "glove", "line 1: no values after the token"),
    ("header-dim-zero", b"2 0\n", "word2vec", "line 1: dimension 0 in the header"),
    ("header-dim-over-limit", b"1 70000\na 1\n", "word2vec",
     "line 1: dimension 70000 exceeds the limit of 65536"),
    ("header-count-absurd", b"1000000 300\na 1\n", None,
     "line 1: the header's count 1000000 cannot fit in the 4 bytes after it "
     "(dim 300): is the file truncated?"),
    ("binary-count-cannot-fit",
     b"3 3\na " + struct.pack("<3f", 1, 2, 3) + b"\nb " + struct.pack("<f", 4),
     None, "line 1: the header's count 3 cannot fit in the 21 bytes after it "
     "(dim 3): is the file truncated?"),
    ("malformed-header", b"hello world\n", "word2vec",
     "line 1: malformed header 'hello world' (expected \"count dim\")"),
    ("binary-truncated-vector",
     b"2 3\nalpha " + struct.pack("<3f", 1, 2, 3) + b"\nbetagamma "
     + struct.pack("<f", 4),
     None, "byte 37: unexpected end of file in the vector of 'betagamma' "
     "(4 of 12 bytes)"),
    ("binary-truncated-count",
     b"2 3\n" + b"x" * 20 + b" " + struct.pack("<3f", 1, 2, 3) + b"\n", None,
     "byte 38: unexpected end of file: 1 of the header's 2 vectors read"),
    ("binary-truncated-token",
     b"2 1\naaaaaaa " + struct.pack("<f", 1) + b"\nbee", "word2vec-binary",
     "byte 20: unexpected end of file in the token of vector 1 of 2"),
    ("binary-data-after",
     b"1 1\na " + struct.pack("<f", 1) + b"\nextra", "word2vec-binary",
     "byte 11: data after the header's 1 vectors"),
    ("binary-nan",
     b"1 2\na " + struct.pack("<f", 1) + b"\x00\x00\xc0\x7f", None,
     "byte 10: element 1 of 'a' is NaN"),
    ("binary-inf",
     b"1 1\nz " + struct.pack("<f", float("-inf")), "word2vec-binary",
     "byte 6: element 0 of 'z' is -Inf"),
    ("binary-wrong-dim-garbage-token",
     b"2 1\na " + struct.pack("<2f", 1, 2) + b"\nb " + struct.pack("<f", 3),
     "word2vec-binary",
     "byte 10: token is not valid UTF-8 (is the header's dim right?)"),
]


@pytest.mark.parametrize("name,content,fmt,message", MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_malformed_file_error_names_file_and_place(db, tmp_path, name, content,
                                                   fmt, message):
    path = str(tmp_path / f"{name}.vec")
    with open(path, "wb") as f:
        f.write(content)
    sql = "SELECT n, token, vector FROM embed_file(?" + (", ?)" if fmt else ")")
    params = (path, fmt) if fmt else (path,)
    assert error_of(db, sql, params) == f"embed_file: '{path}' {message}"


def npy_bytes(header, data=b"", version=1):
    """A .npy file with a hand-written header dict (padded as numpy does)."""
    h = header.encode("latin1")
    pre = 10 if version == 1 else 12
    pad = (-(pre + len(h) + 1)) % 64
    h = h + b" " * pad + b"\n"
    size = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([version, 0]) + size + h + data


NPY_MALFORMED = [
    ("big-endian", lambda p: np.save(p, np.ones((2, 2), ">f4")),
     "byte 10: unsupported dtype '>f4' (expected '<f4' float32 or '<f8' float64)"),
    ("int32", lambda p: np.save(p, np.ones((2, 2), "<i4")),
     "byte 10: unsupported dtype '<i4' (expected '<f4' float32 or '<f8' float64)"),
    ("float16", lambda p: np.save(p, np.ones((2, 2), "<f2")),
     "byte 10: unsupported dtype '<f2' (expected '<f4' float32 or '<f8' float64)"),
    ("fortran", lambda p: np.save(p, np.asfortranarray(np.ones((2, 3), "<f4"))),
     "byte 10: Fortran-order array (save it in C order, e.g. with "
     "numpy.ascontiguousarray)"),
    ("one-d", lambda p: np.save(p, np.ones(3, "<f4")),
     "byte 10: shape (3,) is not 2-D (rows, dim)"),
    ("three-d", lambda p: np.save(p, np.ones((2, 3, 4), "<f4")),
     "byte 10: shape (2, 3, 4) is not 2-D (rows, dim)"),
    ("zero-dim", lambda p: np.save(p, np.ones((3, 0), "<f4")),
     "byte 10: dimension 0 in shape (3, 0)"),
    ("dim-over-limit", lambda p: open(p, "wb").write(npy_bytes(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 70000), }")),
     "byte 10: dimension 70000 exceeds the limit of 65536"),
    ("structured", lambda p: np.save(p, np.zeros(2, dtype=[("a", "<f4")])),
     "byte 10: unsupported dtype (a structured or non-string descr)"),
    ("truncated", lambda p: open(p, "wb").write(npy_bytes(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }",
        struct.pack("<5f", 1, 2, 3, 4, 5))),
     "byte 148: unexpected end of file in row 2 of 3"),
    ("data-after", lambda p: open(p, "wb").write(npy_bytes(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }",
        struct.pack("<3f", 1, 2, 3))),
     "byte 136: data after the 1 x 2 array"),
    ("nan-f4", lambda p: np.save(p, np.array([[1, 2], [3, np.nan]], "<f4")),
     "byte 140: element 1 of row 1 is NaN"),
    ("inf-f8", lambda p: np.save(p, np.array([[1, -np.inf]], "<f8")),
     "byte 136: element 1 of row 0 is -Inf"),
    ("f8-beyond-float32", lambda p: np.save(p, np.array([[1e300, 1]], "<f8")),
     "byte 128: element 0 of row 0 (1e+300) is beyond float32"),
    ("version-9", lambda p: open(p, "wb").write(
        b"\x93NUMPY\x09\x00" + b"\x00" * 8),
     "byte 6: unsupported .npy version 9.0"),
    ("header-cut", lambda p: open(p, "wb").write(npy_bytes(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }")[:40]),
     "byte 40: unexpected end of file in the header"),
    ("header-garbage", lambda p: open(p, "wb").write(npy_bytes("not a dict")),
     "byte 10: malformed header (expected '{')"),
]


@pytest.mark.parametrize("name,write,message", NPY_MALFORMED,
                         ids=[m[0] for m in NPY_MALFORMED])
def test_malformed_npy_error_names_file_and_byte(db, tmp_path, name, write,
                                                 message):
    path = str(tmp_path / f"{name}.npy")
    write(path)
    assert error_of(db, "SELECT vector FROM embed_file(?)", (path,)) == \
        f"embed_file: '{path}' {message}"


def test_not_an_npy_file_when_npy_is_forced(db, tmp_path):
    path = tmp_path / "x.npy"
    path.write_text("a 1 2\n")
    assert error_of(db, "SELECT * FROM embed_file(?, 'npy')", (str(path),)) == \
        f"embed_file: '{path}' byte 0: not a .npy file (no \\x93NUMPY magic)"


def test_missing_file_directory_empty_file_and_bad_arguments(db, tmp_path):
    missing = str(tmp_path / "missing.txt")
    assert error_of(db, "SELECT * FROM embed_file(?)", (missing,)) == \
        f"embed_file: cannot open '{missing}': No such file or directory"
    assert error_of(db, "SELECT * FROM embed_file(?)", (str(tmp_path),)) == \
        f"embed_file: '{tmp_path}' is a directory"
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert error_of(db, "SELECT * FROM embed_file(?)", (str(empty),)) == \
        f"embed_file: '{empty}' is empty (no format to detect)"
    assert read(db, str(empty), "glove") == []
    assert error_of(db, "SELECT * FROM embed_file(?, 'word2vec')",
                    (str(empty),)) == \
        f"embed_file: '{empty}' line 1: missing header (empty file)"
    assert error_of(db, "SELECT * FROM embed_file(?, 'csv')", (str(empty),)) == \
        "embed_file: unknown format 'csv' (expected word2vec, " \
        "word2vec-binary, glove, fasttext or npy)"
    assert error_of(db, "SELECT * FROM embed_file(NULL)") == \
        "embed_file: the path is NULL"
    assert error_of(db, "SELECT * FROM embed_file('')") == \
        "embed_file: the path is empty"
    assert error_of(db, "SELECT * FROM embed_file") == \
        "embed_file: a file path is required, as in " \
        "SELECT token, vector FROM embed_file('vectors.txt')"
    with pytest.raises(sqlite3.OperationalError):
        db.execute("CREATE VIRTUAL TABLE f USING embed_file('x')")


def test_rows_before_an_error_are_returned_then_the_error(db, tmp_path):
    path = tmp_path / "late.txt"
    path.write_text("a 1 2\nb 3 4\nc 5\n")
    got = []
    with pytest.raises(sqlite3.OperationalError, match="line 3: expected 2"):
        for (token,) in db.execute("SELECT token FROM embed_file(?)",
                                   (str(path),)):
            got.append(token)
    assert got in (["a"], ["a", "b"])  # Python's sqlite3 reads a row ahead


# ----------------------------------------------------- vocabulary loading

def load_vocab(db, path):
    db.execute("INSERT INTO vocab(id, token) SELECT n, token FROM embed_file(?)",
               (path,))
    db.execute("INSERT INTO emb(id, vector) SELECT n, vector FROM embed_file(?)",
               (path,))


def snapshot(db):
    return (db.execute("SELECT id, token FROM vocab ORDER BY id").fetchall(),
            db.execute("SELECT id, vector FROM emb ORDER BY id").fetchall())


def test_vocab_load_in_one_transaction_and_rollback_on_malformed_file(
        file_db, tmp_path, rng):
    db = file_db
    db.execute("CREATE TABLE vocab(id INTEGER PRIMARY KEY, token TEXT UNIQUE)")
    db.execute("CREATE VIRTUAL TABLE emb USING embedding(dim=8)")
    good = str(tmp_path / "good.txt")
    tokens = [f"tok{i}" for i in range(100)]
    vecs = rng.standard_normal((100, 8)).astype(np.float32)
    gensim_kv(tokens, vecs).save_word2vec_format(good)
    db.execute("BEGIN")
    load_vocab(db, good)
    db.execute("COMMIT")
    before = snapshot(db)
    assert len(before[0]) == len(before[1]) == 100
    assert np.stack([from_blob(v) for _, v in before[1]]).tobytes() == vecs.tobytes()

    # a second file, malformed at line 60 (after 58 good entries)
    bad = str(tmp_path / "bad.txt")
    more = rng.standard_normal((80, 8)).astype(np.float32)
    with open(bad, "w") as f:
        f.write("80 8\n")
        for i, v in enumerate(more):
            vals = [repr(float(x)) for x in v]
            if i == 58:
                vals[3] = "nan"
            f.write(f"new{i} " + " ".join(vals) + "\n")
    db.execute("BEGIN")
    db.execute("INSERT INTO vocab(id, token) VALUES (1000, 'first')")
    with pytest.raises(sqlite3.OperationalError) as info:
        db.execute("INSERT INTO vocab(id, token) SELECT n + 100, token "
                   "FROM embed_file(?)", (bad,))
    assert str(info.value) == f"embed_file: '{bad}' line 60: element 3 is NaN"
    # the failed statement added nothing, even inside the transaction
    assert db.execute("SELECT count(*) FROM vocab").fetchone() == (101,)
    with pytest.raises(sqlite3.OperationalError):
        db.execute("INSERT INTO emb(id, vector) SELECT n + 100, vector "
                   "FROM embed_file(?)", (bad,))
    assert db.execute("SELECT count(*) FROM emb").fetchone() == (100,)
    db.execute("ROLLBACK")
    assert snapshot(db) == before
    # and another connection sees the committed state only
    other = connect(db.execute("PRAGMA database_list").fetchone()[2])
    assert snapshot(other) == before
    other.close()


def test_autocommit_load_of_a_malformed_file_leaves_nothing(db, tmp_path):
    db.execute("CREATE TABLE vocab(id INTEGER PRIMARY KEY, token TEXT UNIQUE)")
    db.execute("CREATE VIRTUAL TABLE emb USING embedding(dim=2)")
    bad = tmp_path / "bad.txt"
    bad.write_text("a 1 2\nb 3 4\nc 5 6\nd 7\n")
    with pytest.raises(sqlite3.OperationalError):
        db.execute("INSERT INTO emb(id, vector) SELECT n, vector "
                   "FROM embed_file(?)", (str(bad),))
    assert db.execute("SELECT count(*) FROM emb").fetchone() == (0,)
    with pytest.raises(sqlite3.OperationalError):
        db.execute("INSERT INTO vocab(id, token) SELECT n, token "
                   "FROM embed_file(?)", (str(bad),))
    assert db.execute("SELECT count(*) FROM vocab").fetchone() == (0,)


# --------------------------------------------------------------- writing

def make_source(db, tokens, vecs, name="src"):
    db.execute(f"CREATE TABLE {name}(pos INTEGER PRIMARY KEY, token TEXT, "
               "vector BLOB)")
    db.executemany(f"INSERT INTO {name}(token, vector) VALUES (?, ?)",
                   [(t, to_blob(v)) for t, v in zip(tokens, vecs)])


def save(db, path, fmt, table="src"):
    return db.execute(f"SELECT embed_save(?, ?, token, vector) FROM "
                      f"(SELECT * FROM {table} ORDER BY pos)",
                      (path, fmt)).fetchone()[0]


@pytest.mark.parametrize("fmt,binary", [("word2vec", False), ("fasttext", False),
                                        ("word2vec-binary", True)])
def test_embed_save_is_read_back_by_gensim_bit_exact(db, tmp_path, rng, fmt,
                                                     binary):
    vecs = tricky_vectors(rng, len(TOKENS), 11)
    make_source(db, TOKENS, vecs)
    path = str(tmp_path / "out.vec")
    assert save(db, path, fmt) == len(TOKENS)
    kv = KeyedVectors.load_word2vec_format(path, binary=binary)
    assert list(kv.index_to_key) == TOKENS
    assert kv.vectors.dtype == np.float32
    assert kv.vectors.tobytes() == vecs.tobytes()
    with open(path, "rb") as f:
        assert f.readline() == f"{len(TOKENS)} 11\n".encode()
    # and by embed_file
    assert matrix(read(db, path)).tobytes() == vecs.tobytes()
    assert [f for f in os.listdir(tmp_path)] == ["out.vec"]  # no temp files


def test_embed_save_glove_is_read_back_by_gensim(db, tmp_path, rng):
    vecs = tricky_vectors(rng, len(TOKENS), 3)
    make_source(db, TOKENS, vecs)
    path = str(tmp_path / "out.glove.txt")
    assert save(db, path, "glove") == len(TOKENS)
    kv = KeyedVectors.load_word2vec_format(path, no_header=True)
    assert list(kv.index_to_key) == TOKENS
    assert kv.vectors.tobytes() == vecs.tobytes()
    assert detected(db, path) == [("glove",)]


def test_embed_save_text_layout_is_plain(db, tmp_path):
    db.execute("CREATE TABLE src(pos INTEGER PRIMARY KEY, token TEXT, vector)")
    db.execute("INSERT INTO src(token, vector) VALUES ('a', '[0.1, -2, 1e-45]'),"
               " ('b', '[3.5, 0, -0.0]')")
    path = tmp_path / "o.txt"
    assert save(db, str(path), "word2vec") == 2
    assert path.read_text() == "2 3\na 0.1 -2 1.4013e-45\nb 3.5 0 -0\n"
    path = tmp_path / "o.bin"
    assert save(db, str(path), "word2vec-binary") == 2
    assert path.read_bytes() == (b"2 3\na " + struct.pack("<3f", 0.1, -2, 1e-45)
                                 + b"\nb " + struct.pack("<3f", 3.5, 0, -0.0)
                                 + b"\n")


def test_embed_save_round_trip_through_embedding_table_and_group_by(
        db, tmp_path, rng):
    db.execute("CREATE TABLE vocab(id INTEGER PRIMARY KEY, token TEXT UNIQUE, "
               "lang TEXT)")
    db.execute("CREATE VIRTUAL TABLE emb USING embedding(dim=5, "
               "num_embeddings=6, seed=3)")
    db.executemany("INSERT INTO vocab VALUES (?, ?, ?)",
                   [(0, "cat", "en"), (1, "chat", "fr"), (2, "dog", "en"),
                    (3, "chien", "fr"), (4, "bird", "en"), (5, "oiseau", "fr")])
    out = {lang: str(tmp_path / f"{lang}.bin") for lang in ("en", "fr")}
    rows = db.execute(
        "SELECT lang, embed_save(? || '/' || lang || '.bin', 'word2vec-binary',"
        " token, vector) FROM (SELECT v.lang, v.token, e.vector FROM vocab v "
        "JOIN emb e ON e.id = v.id ORDER BY v.id) GROUP BY lang ORDER BY lang",
        (str(tmp_path),)).fetchall()
    assert rows == [("en", 3), ("fr", 3)]
    kv = KeyedVectors.load_word2vec_format(out["fr"], binary=True)
    assert list(kv.index_to_key) == ["chat", "chien", "oiseau"]
    want = np.stack([from_blob(db.execute("SELECT vector FROM emb WHERE id = ?",
                                          (i,)).fetchone()[0]) for i in (1, 3, 5)])
    assert kv.vectors.tobytes() == want.tobytes()


def test_embed_save_no_rows_writes_nothing(db, tmp_path):
    db.execute("CREATE TABLE src(pos INTEGER PRIMARY KEY, token TEXT, vector)")
    path = tmp_path / "none.txt"
    assert save(db, str(path), "word2vec") == 0
    assert not path.exists()


# (name, rows as (token, vector) SQL literals, message)
SAVE_ERRORS = [
    ("dimension-change", [("'a'", "'[1, 2]'"), ("'b'", "'[1, 2, 3]'")],
     "embed_save: dimension mismatch at token 'b' (3 vs 2)"),
    ("null-vector", [("'a'", "'[1, 2]'"), ("'b'", "NULL")],
     "embed_save: NULL vector for token 'b'"),
    ("invalid-vector", [("'a'", "'[1, 2]'"), ("'b'", "'[1, x]'")],
     "embed_save: malformed JSON vector at offset 4 (expected a number)"),
    ("nan-vector", [("'a'", "x'0000c07f'")], "embed_save: element 0 is NaN"),
    ("bad-blob", [("'a'", "x'000000'")],
     "embed_save: BLOB length 3 is not a multiple of 4 (float32)"),
    ("space-in-token", [("'a'", "'[1]'"), ("'new york'", "'[2]'")],
     "embed_save: token 'new york' contains whitespace (the file formats "
     "separate with it)"),
    ("newline-in-token", [("'a' || char(10) || 'b'", "'[1]'")],
     "embed_save: token 'a\nb' contains whitespace (the file formats "
     "separate with it)"),
    ("tab-in-token", [("'a' || char(9)", "'[1]'")],
     "embed_save: token 'a\t' contains whitespace (the file formats "
     "separate with it)"),
    ("null-token", [("'a'", "'[1]'"), ("NULL", "'[2]'")],
     "embed_save: the token must be TEXT, got NULL"),
    ("blob-token", [("x'61'", "'[1]'")],
     "embed_save: the token must be TEXT, got BLOB"),
    ("empty-token", [("''", "'[1]'")], "embed_save: empty token"),
    ("invalid-utf8-token", [("CAST(x'61ff' AS TEXT)", "'[1]'")],
     "embed_save: token is not valid UTF-8 (byte 1)"),
]


@pytest.mark.parametrize("fmt", ["word2vec", "word2vec-binary", "glove"])
@pytest.mark.parametrize("name,rows,message", SAVE_ERRORS,
                         ids=[e[0] for e in SAVE_ERRORS])
def test_embed_save_error_leaves_the_target_untouched(db, tmp_path, fmt, name,
                                                      rows, message):
    path = tmp_path / "target.txt"
    path.write_text("1 1\nprevious 1\n")
    values = ", ".join(f"({i}, {t}, {v})" for i, (t, v) in enumerate(rows))
    sql = (f"WITH s(i, t, v) AS (VALUES {values}) "
           f"SELECT embed_save(?, ?, t, v) FROM (SELECT * FROM s ORDER BY i)")
    assert error_of(db, sql, (str(path), fmt)) == message
    assert path.read_text() == "1 1\nprevious 1\n"
    assert os.listdir(tmp_path) == ["target.txt"]  # no temporary files left


def test_embed_save_argument_errors(db, tmp_path):
    d = str(tmp_path)
    assert error_of(db, "SELECT embed_save(?, 'word2vec', 'a', '[1]')", (d,)) == \
        f"embed_save: '{d}' is a directory"
    assert error_of(db, "SELECT embed_save(?, 'csv', 'a', '[1]')",
                    (d + "/x.csv",)) == \
        "embed_save: unknown format 'csv' (expected word2vec, " \
        "word2vec-binary, fasttext, glove or npy)"
    assert error_of(db, "SELECT embed_save(NULL, 'word2vec', 'a', '[1]')") == \
        "embed_save: the path must be non-empty TEXT, got NULL"
    assert error_of(db, "SELECT embed_save('', 'word2vec', 'a', '[1]')") == \
        "embed_save: the path must be non-empty TEXT, got ''"
    assert error_of(db, "SELECT embed_save('x', 3, 'a', '[1]')") == \
        "embed_save: the format must be TEXT, got INTEGER"
    nodir = d + "/no/such/dir/out.txt"
    assert error_of(db, "SELECT embed_save(?, 'word2vec', 'a', '[1]')",
                    (nodir,)) == \
        f"embed_save: cannot create a temporary file next to '{nodir}': " \
        "No such file or directory"
    assert error_of(db, "WITH t(p) AS (VALUES (?), (?)) "
                    "SELECT embed_save(p, 'word2vec', 'a', '[1]') FROM t",
                    (d + "/a", d + "/b")) == \
        f"embed_save: the path or format changed within the group (was " \
        f"'{d}/a', 'word2vec')"
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_embed_save_unwritable_directory(db, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        msg = error_of(db, "SELECT embed_save(?, 'word2vec', 'a', '[1]')",
                       (str(ro / "o.txt"),))
        assert msg.endswith("Permission denied")
    finally:
        ro.chmod(0o700)


def test_embed_save_refuses_a_target_that_is_not_a_regular_file(db):
    # never renames over a device (or FIFO, socket); nothing is created
    assert error_of(db, "SELECT embed_save('/dev/null', 'word2vec', 'a', "
                    "'[1]')") == \
        "embed_save: '/dev/null' is not a regular file (a device, FIFO or socket)"
    assert not [f for f in os.listdir("/dev") if ".embed-" in f]


def test_embed_save_through_a_symlink_writes_the_linked_file(db, tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    assert db.execute("SELECT embed_save(?, 'word2vec', 'x', '[1]')",
                      (str(link),)).fetchone() == (1,)
    assert link.is_symlink() and real.read_text() == "1 1\nx 1\n"
    assert sorted(os.listdir(tmp_path)) == ["link.txt", "real.txt"]


IO_ERROR_SCRIPT = """
import resource, signal, sys
sys.path.insert(0, sys.argv[1])
from conftest import connect
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
db = connect()
try:
    db.execute("WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM r "
               "WHERE i < 4999) SELECT embed_save(?, ?, 'w' || i, "
               "embed_scale('[0.123456, 1.5, -2.25, 3]', i)) FROM r",
               (sys.argv[2], sys.argv[3])).fetchall()
    print("no error")
except Exception as e:
    print(e)
"""


@pytest.mark.parametrize("fmt", ["word2vec", "word2vec-binary", "glove"])
def test_embed_save_io_error_names_the_file_and_leaves_the_target(tmp_path, fmt):
    # a file size limit (RLIMIT_FSIZE) makes the writes fail with EFBIG
    import subprocess
    import sys
    target = tmp_path / "out.vec"
    target.write_text("old")
    out = subprocess.run([sys.executable, "-c", IO_ERROR_SCRIPT, TESTS,
                          str(target), fmt], capture_output=True, text=True,
                         timeout=60, env=os.environ)
    assert out.stdout.strip() == f"embed_save: cannot write '{target}': " \
        "File too large", out.stderr
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.vec"]


def test_embed_save_from_a_failing_embed_file_writes_nothing(db, tmp_path, rng):
    # converting a file that turns out malformed midway: the statement fails
    # and the target keeps its old content
    bad = tmp_path / "bad.txt"
    bad.write_text("a 1 2\nb 3 4\nc 5 nan\n")
    out = tmp_path / "out.bin"
    out.write_bytes(b"old")
    assert error_of(db, "SELECT embed_save(?, 'word2vec-binary', token, vector)"
                    " FROM embed_file(?)", (str(out), str(bad))) == \
        f"embed_file: '{bad}' line 3: element 1 is NaN"
    assert out.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["bad.txt", "out.bin"]
    # the same conversion of a good file, in place over its own source
    good = tmp_path / "good.txt"
    good.write_text("a 1 2\nb 3 4\n")
    assert db.execute("SELECT embed_save(?, 'word2vec', token, vector) FROM "
                      "embed_file(?)", (str(good), str(good))).fetchone() == (2,)
    assert good.read_text() == "2 2\na 1 2\nb 3 4\n"


def test_embed_save_replaces_an_existing_file_atomically(db, tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("old")
    os.link(path, tmp_path / "hardlink")  # a rename leaves the old inode alone
    assert db.execute("SELECT embed_save(?, 'word2vec', 'x', '[1, 2]')",
                      (str(path),)).fetchone() == (1,)
    assert path.read_text() == "1 2\nx 1 2\n"
    assert (tmp_path / "hardlink").read_text() == "old"


# ------------------------------------------------------------ DIRECTONLY

def test_embed_file_and_embed_save_are_directonly(db, tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("a 1 2\n")
    db.execute("CREATE TABLE log(x)")
    db.execute(f"CREATE VIEW v AS SELECT * FROM embed_file('{path}')")
    assert error_of(db, "SELECT * FROM v") == \
        'unsafe use of virtual table "embed_file"'
    db.execute(f"CREATE VIEW s AS SELECT embed_save('{tmp_path}/o.txt', "
               "'word2vec', 'a', '[1]') AS c")
    assert error_of(db, "SELECT * FROM s") == "unsafe use of embed_save()"
    db.execute(f"CREATE TRIGGER t AFTER INSERT ON log BEGIN "
               f"SELECT count(*) FROM embed_file('{path}'); END")
    assert error_of(db, "INSERT INTO log VALUES (1)") == \
        'unsafe use of virtual table "embed_file"'
    db.execute("DROP TRIGGER t")
    db.execute(f"CREATE TRIGGER t AFTER INSERT ON log BEGIN "
               f"SELECT embed_save('{tmp_path}/o.txt', 'word2vec', 'a', '[1]');"
               " END")
    assert error_of(db, "INSERT INTO log VALUES (1)") == \
        "unsafe use of embed_save()"
    assert not (tmp_path / "o.txt").exists()
    # top-level use works
    assert db.execute("SELECT count(*) FROM embed_file(?)",
                      (str(path),)).fetchone() == (1,)


def test_registration_flags(db):
    DETERMINISTIC, DIRECTONLY, INNOCUOUS = 0x800, 0x80000, 0x200000
    rows = db.execute("SELECT narg, type, flags FROM pragma_function_list "
                      "WHERE name = 'embed_save'").fetchall()
    assert len(rows) == 1
    narg, kind, flags = rows[0]
    assert (narg, kind) == (4, "a")
    assert flags & DIRECTONLY and not flags & (DETERMINISTIC | INNOCUOUS)
    assert ("embed_file",) in db.execute(
        "SELECT name FROM pragma_module_list").fetchall()
