"""Shared fixtures and helpers of the embed Python test suites.

pytest loads this file for every suite below tests/ (tests/py/ and
tests/robust/), and puts tests/ on sys.path, so a suite imports the helpers
with `from conftest import ...`. The suites run under Debian's
/usr/bin/python3 (its sqlite3 module can load extensions) with PyTorch and
numpy as the numeric reference:

    EMBED_EXT=$PWD/embed /usr/bin/python3 -m pytest -q tests

EMBED_EXT is the extension path without its suffix (the Makefile points it at
./embed or at build/asan/embed for the sanitizer run). Without it the suites
load embed from the repository root.

Paths:

    ROOT                 the repository root
    TESTS                the tests/ folder (this file's)
    EXT                  the extension to load (EMBED_EXT, or ROOT/embed)

Helpers:

    connect(path)        a connection with the extension loaded, autocommit
    one(conn, sql, ...)  the first column of the first row of a query
    f32(*values)         float32 little-endian bytes of the values
    to_blob(array)       float32 little-endian bytes, as numpy's .tobytes()
    from_blob(bytes)     a float32 numpy array (a copy) from a vector BLOB
    file_hash(path)      sha256 of a database file's bytes
    qident(name)         an SQL identifier, double-quoted
    row(conn, t, id)     the stored vector of one row of embedding table t
    rows(conn, t)        {id: vector} of every row of embedding table t
    weights(conn, t, n)  rows 0..n-1 of embedding table t as a matrix
    error_of(conn, sql)  the text of the error a statement raises
    say(request, text)   print past pytest's output capture (a figure)

Fixtures: db, db_path, file_db, rng (see each below).
"""
import hashlib
import os
import sqlite3
import struct

import numpy as np
import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
EXT = os.environ.get("EMBED_EXT") or os.path.join(ROOT, "embed")


def connect(path=":memory:"):
    """Open `path` with the extension loaded, in autocommit mode (explicit
    BEGIN/COMMIT/ROLLBACK only, no implicit transactions from Python)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.enable_load_extension(True)
    conn.load_extension(EXT)
    conn.enable_load_extension(False)
    return conn


def one(conn, sql, *params):
    """The first column of the first row that `sql` returns."""
    return conn.execute(sql, params).fetchone()[0]


def f32(*values):
    """The BLOB of a vector given as numbers: float32 little-endian bytes."""
    return struct.pack("<%df" % len(values), *values)


def as_layout_2(path, name, dim):
    """Rewrite the fresh (never stepped) table `name` in the file at path,
    of layout 3 or 4, as layout 2, the form earlier releases wrote: its rows
    cut to the weight (dim floats), its layout row set to 2. Plain SQL on a
    connection without the extension; the table must not be open."""
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute(f"UPDATE {name}_vectors SET vector = substr(vector, 1, {4 * dim})")
    raw.execute(f"UPDATE {name}_config SET value = '2' WHERE key = 'layout'")
    raw.close()


def say(request, text):
    """Print past pytest's output capture (the harness's figure)."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():
        print(text, flush=True)


def to_blob(array):
    """The BLOB of a vector (or of n x D rows, row-major): float32 LE bytes."""
    return np.ascontiguousarray(np.asarray(array, dtype="<f4")).tobytes()


def from_blob(blob, dim=None):
    """A float32 array from a vector BLOB; reshaped to (-1, dim) if given."""
    assert isinstance(blob, bytes), f"expected a BLOB, got {type(blob).__name__}"
    assert len(blob) % 4 == 0
    arr = np.frombuffer(blob, dtype="<f4").astype(np.float32)
    return arr.reshape(-1, dim) if dim else arr


def file_hash(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def qident(name):
    """An SQL identifier, double-quoted."""
    return '"' + name.replace('"', '""') + '"'


def row(conn, table, id_):
    r = conn.execute(f"SELECT vector FROM {qident(table)} WHERE id = ?",
                     (id_,)).fetchone()
    assert r is not None, f"no row {id_} in {table}"
    return from_blob(r[0])


def rows(conn, table):
    return {i: from_blob(v) for i, v in
            conn.execute(f"SELECT id, vector FROM {qident(table)}")}


def weights(conn, table, n):
    """Rows 0..n-1 of an embedding table as an n x D float32 matrix."""
    return np.stack([row(conn, table, i) for i in range(n)])


def error_of(conn, sql, params=()):
    """The text of the error that running `sql` raises (fails if none)."""
    with pytest.raises(sqlite3.Error) as info:
        conn.execute(sql, params).fetchall()
    return str(info.value)


@pytest.fixture
def db():
    """An in-memory database with the extension loaded."""
    conn = connect()
    yield conn
    conn.close()


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "test.db")


@pytest.fixture
def file_db(db_path):
    """A file database in tmp_path with the extension loaded."""
    conn = connect(db_path)
    yield conn
    conn.close()


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from the test's name, so every test has its
    own reproducible random data. The name is spelled tests/FILE::TEST
    whichever folder FILE sits in and wherever pytest runs from, so a suite
    keeps its data when it moves."""
    name = request.node.nodeid.split("::", 1)[1]
    key = f"tests/{request.node.path.name}::{name}"
    seed = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    return np.random.default_rng(seed)
