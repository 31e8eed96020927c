"""Concurrency in WAL mode: one connection trains while others look up and
search; readers never see a torn row or a half-applied batch, see every
batch committed before their read began, and SQLITE_BUSY reaches the caller.

    EMBED_EXT=$PWD/embed /usr/bin/python3 -m pytest -q tests/robust/test_concurrency.py
    EMBED_CONCURRENCY_SECONDS=60 ...      (the default is 4)

The table (dim 16, metric l2, init zeros) has a fixed set S of 8 rows and 200
other rows. Every batch the trainer commits steps every row of S once with
gradient -1 and lr 1, sometimes in one embed_update, sometimes split over
two statements of one transaction, sometimes as one autocommit call. With
plain SGD that adds exactly 1 to every element (exact in float32), so the
row's level m, the number of batches it has seen, is its value. The test
runs again on an Adagrad table (storage layout 3, the state in the weight's
record: README "Storage") and on an SGD table with momentum 0.9 (layout 4,
the buffer in the weight's record and a mark per buffered row), whose row
after m steps from zero holds the weight W[m] and the state B[m] of a
serial replay on a one-row table (W increases, so the weight names m); a
read of both in one statement must find B[m] beside W[m]. A momentum step
also moves every row with a buffer, so there a batch is never split over
two calls, and the contender (below) steps a second table, d, of the same
database (so the same write lock). So any read of S must show 8 identical
rows of one level m (a torn row, a weight from another step than its
state, or a half batch breaks that), m must be at least the number of
batches committed before the read began (a stale search snapshot breaks
that), and m never goes back.

Readers (each its own connection): point/IN reads, embed_lookup batches, a
filtered search (the distance of each row of S to the zero vector is 4 m),
a whole-table search, and a long read transaction whose reads must agree.

A contender connection with busy_timeout 0 (and one with 50 ms) calls
embed_update on a row outside S while the trainer holds the write lock: each
call either succeeds or raises SQLITE_BUSY (code 5 / 517) promptly; at the
end that row must hold exactly the successful calls (a swallowed BUSY would
show as a success that changed nothing).
"""
import os
import struct
import threading
import time
import sqlite3

import pytest

from conftest import EXT, say

DIM = 16
S = list(range(8))
S_JSON = "[" + ",".join(map(str, S)) + "]"
CONTENDED = 500  # the contenders' row
# the contenders' busy timeouts in seconds (two: they also race each other)
CONTENDER_TIMEOUTS = [float(t) for t in
                      os.environ.get("EMBED_CONTENDERS", "0,0.05").split(",")]


def connect(path, timeout=5.0):
    conn = sqlite3.connect(path, isolation_level=None, timeout=timeout,
                           check_same_thread=False)
    conn.enable_load_extension(True)
    conn.load_extension(EXT)
    return conn


def floats(blob):
    assert isinstance(blob, bytes), f"not a vector: {blob!r}"
    assert len(blob) % 4 == 0
    return struct.unpack("<%df" % (len(blob) // 4), blob)


# The trainer stops after this many batches, the length of the replay.
MAX_BATCHES = int(os.environ.get("EMBED_CONCURRENCY_BATCHES", "20000"))


OPTIONS = {"sgd": "", "adagrad": ", optimizer=adagrad",
           "momentum": ", optimizer=sgd, momentum=0.9"}


class Scheme:
    """How a row tells how many steps it has seen: `value_at[m]` is every
    element of the weight after m steps (gradient -1, lr 1) from zero and
    `state_at[m]` every element of its optimizer state (None: no state),
    from a serial replay on a one-row table of the same optimizer."""

    def __init__(self, optimizer):
        self.options = OPTIONS[optimizer]
        self.has_state = optimizer != "sgd"
        self.splits = optimizer != "momentum"  # a batch may take two calls
        self.contended = "d" if optimizer == "momentum" else "c"
        conn = connect(":memory:")
        conn.execute("CREATE VIRTUAL TABLE r USING embedding(dim=1, "
                     f"init=zeros{self.options})")
        conn.execute("INSERT INTO r(id) VALUES (0)")
        grad = struct.pack("<f", -1.0)
        self.value_at, self.state_at = [], []
        conn.execute("BEGIN")
        for m in range(MAX_BATCHES + 2):
            if m:
                conn.execute("INSERT INTO r(r, id, vector, lr) "
                             "VALUES ('step', 0, ?, 1)", (grad,))
            weight, state = conn.execute(
                "SELECT vector, embed_optimizer_state('r', id) FROM r "
                "WHERE id = 0").fetchone()
            self.value_at.append(floats(weight)[0])
            self.state_at.append(None if state is None else floats(state)[0])
        conn.execute("COMMIT")
        conn.close()
        assert all(a < b for a, b in zip(self.value_at, self.value_at[1:]))
        self.level_of = {v: m for m, v in enumerate(self.value_at)}

    def level(self, rows, what):
        """The m of 8 rows of S (each a tuple of DIM floats); fails on a
        torn row or a half-applied batch."""
        assert len(rows) == len(S), f"{what}: {len(rows)} rows of S"
        values = {v for r in rows for v in r}
        assert len(values) == 1, \
            f"{what}: torn or half-applied: {sorted(values)}"
        v = values.pop()
        assert v in self.level_of, f"{what}: {v} is no step's value"
        return self.level_of[v]


class Shared:
    def __init__(self):
        self.lock = threading.Lock()
        self.committed = 0
        self.stop = False
        self.errors = []
        self.reads = 0
        self.busy = 0
        self.contender_ok = 0
        self.max_wait = 0.0

    def published(self):
        with self.lock:
            return self.committed

    def fail(self, msg):
        with self.lock:
            self.errors.append(msg)
            self.stop = True


def trainer(path, sh, scheme):
    conn = connect(path)
    grads = struct.pack("<%df" % (len(S) * DIM), *([-1.0] * (len(S) * DIM)))
    half = struct.pack("<%df" % (4 * DIM), *([-1.0] * (4 * DIM)))
    n = 0
    try:
        while not sh.stop and n < MAX_BATCHES:
            n += 1
            style = n % 3
            if style == 0:  # one autocommit call (its own transaction)
                conn.execute("SELECT embed_update('c', ?, ?, 1)",
                             (S_JSON, grads))
            else:
                conn.execute("BEGIN IMMEDIATE")
                if style == 1 or not scheme.splits:
                    conn.execute("SELECT embed_update('c', ?, ?, 1)",
                                 (S_JSON, grads))
                else:  # the batch split over two statements
                    conn.execute("SELECT embed_update('c', '[0,1,2,3]', ?, 1)",
                                 (half,))
                    time.sleep(0.001)  # widen the window for a torn read
                    conn.execute("SELECT embed_update('c', '[4,5,6,7]', ?, 1)",
                                 (half,))
                conn.execute("COMMIT")
            with sh.lock:
                sh.committed = n
    except Exception as e:  # noqa: BLE001 - reported, not swallowed
        sh.fail(f"trainer: {type(e).__name__}: {e}")
    finally:
        conn.close()


READS = [
    ("IN", "SELECT vector FROM c WHERE id IN (0,1,2,3,4,5,6,7)"),
    ("range", "SELECT vector FROM c WHERE id BETWEEN 0 AND 7"),
    ("lookup", "SELECT embed_lookup('c', '[0,1,2,3,4,5,6,7]')"),
    ("search", "SELECT id, distance, vector FROM c WHERE vector MATCH ? "
               "AND k = 8 AND id IN (0,1,2,3,4,5,6,7)"),
    ("search_all", "SELECT id, distance, vector FROM c WHERE vector MATCH ? "
                   "AND k = 300"),
]
ZERO = struct.pack("<%df" % DIM, *([0.0] * DIM))


# Tables with a state: each row's weight and state, read in one statement.
STATE_READ = ("state", "SELECT vector, embed_optimizer_state('c', id) FROM c "
                       "WHERE id IN (0,1,2,3,4,5,6,7)")


def read_level(conn, scheme, name, sql):
    params = (ZERO,) if "MATCH" in sql else ()
    rows = conn.execute(sql, params).fetchall()
    if name == "lookup":
        vals = floats(rows[0][0])
        return scheme.level(
            [vals[i * DIM:(i + 1) * DIM] for i in range(len(S))], name)
    if name.startswith("search"):
        rows = [r for r in rows if r[0] in S]
        m = scheme.level([floats(r[2]) for r in rows], name)
        # l2 distance to the zero vector: sqrt(16) |W[m]| = 4 W[m], up to
        # the rounding of the float32 sum of squares
        want = 4 * scheme.value_at[m]
        for r in rows:
            assert abs(r[1] - want) <= 1e-6 * max(1, want), \
                f"{name}: distance {r[1]} for m {m}"
        return m
    m = scheme.level([floats(r[0]) for r in rows], name)
    if name == "state":
        states = {v for r in rows
                  for v in ((None,) if r[1] is None else floats(r[1]))}
        assert states == {scheme.state_at[m]}, \
            f"state: weights of step {m}, states {states}"
    return m


def reader(path, sh, scheme, which):
    conn = connect(path)
    reads = READS + ([STATE_READ] if scheme.has_state else [])
    last = 0
    i = 0
    try:
        while not sh.stop:
            i += 1
            if which == "txn" and i % 5 == 0:  # a long read transaction
                conn.execute("BEGIN")
                a = read_level(conn, scheme, "search", READS[3][1])
                time.sleep(0.005)
                b = read_level(conn, scheme, "IN", READS[0][1])
                c = read_level(conn, scheme,
                               *(STATE_READ if scheme.has_state else READS[2]))
                conn.execute("COMMIT")
                if not a == b == c:
                    sh.fail(f"one read transaction saw {a}, {b}, {c}")
                continue
            name, sql = reads[(i + which_index(which)) % len(reads)]
            before = sh.published()
            m = read_level(conn, scheme, name, sql)
            if m < before:
                sh.fail(f"{name}: saw {m} batches after {before} were "
                        "committed (stale)")
            if m < last:
                sh.fail(f"{name}: went back from {last} to {m}")
            last = m
            with sh.lock:
                sh.reads += 1
    except AssertionError as e:
        sh.fail(f"reader {which}: {e}")
    except Exception as e:  # noqa: BLE001
        sh.fail(f"reader {which}: {type(e).__name__}: {e}")
    finally:
        conn.close()


def which_index(which):
    return {"a": 0, "b": 2, "txn": 4}.get(which, 0)


def contender(path, sh, scheme, timeout):
    """Steps row CONTENDED of scheme.contended (one level per successful
    call) while the trainer holds the lock; BUSY must come back promptly as
    an error."""
    conn = connect(path, timeout=timeout)
    grad = struct.pack("<%df" % DIM, *([-1.0] * DIM))
    i = 0
    try:
        while not sh.stop and sh.contender_ok < MAX_BATCHES:
            i += 1
            explicit = i % 2 == 0
            t0 = time.monotonic()
            try:
                if explicit:
                    conn.execute("BEGIN")
                r = conn.execute(
                    f"SELECT embed_update('{scheme.contended}', ?, ?, 1)",
                    (CONTENDED, grad)).fetchone()[0]
                if explicit:
                    conn.execute("COMMIT")
                assert r == 1, f"embed_update returned {r}"
                with sh.lock:
                    sh.contender_ok += 1
            except sqlite3.OperationalError as e:
                code = getattr(e, "sqlite_errorcode", None)
                if code is not None and code & 0xFF != 5:
                    raise
                if "locked" not in str(e) and "busy" not in str(e).lower():
                    raise
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                with sh.lock:
                    sh.busy += 1
            waited = time.monotonic() - t0
            with sh.lock:
                sh.max_wait = max(sh.max_wait, waited)
            if waited > timeout + 1.0:
                sh.fail(f"a call waited {waited:.2f} s with busy_timeout "
                        f"{timeout} s (spinning?)")
            time.sleep(0.002)
    except Exception as e:  # noqa: BLE001
        sh.fail(f"contender: {type(e).__name__}: {e}")
    finally:
        conn.close()


@pytest.mark.parametrize("optimizer", list(OPTIONS))
def test_train_while_reading(tmp_path, request, optimizer):
    seconds = float(os.environ.get("EMBED_CONCURRENCY_SECONDS", "4"))
    scheme = Scheme(optimizer)
    path = str(tmp_path / "c.db")
    conn = connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE VIRTUAL TABLE c USING embedding(dim=16, init=zeros, "
                 f"metric=l2{scheme.options})")
    conn.execute("BEGIN")
    for i in S:
        conn.execute("INSERT INTO c(id) VALUES (?)", (i,))
    for i in range(100, 300):  # far from the zero query: rank after S
        conn.execute("INSERT INTO c(id, vector) VALUES (?, ?)",
                     (i, struct.pack("<%df" % DIM, *([1e6 + i] * DIM))))
    conn.execute("INSERT INTO c(id) VALUES (?)", (CONTENDED,))
    if scheme.contended == "d":
        conn.execute("CREATE VIRTUAL TABLE d USING embedding(dim=16, "
                     f"init=zeros{scheme.options})")
        conn.execute("INSERT INTO d(id) VALUES (?)", (CONTENDED,))
    conn.execute("COMMIT")
    conn.close()

    sh = Shared()
    threads = [threading.Thread(target=trainer, args=(path, sh, scheme))]
    threads += [threading.Thread(target=reader, args=(path, sh, scheme, w))
                for w in ("a", "b", "txn")]
    threads += [threading.Thread(target=contender,
                                 args=(path, sh, scheme, t))
                for t in CONTENDER_TIMEOUTS]
    for t in threads:
        t.start()
    deadline = time.monotonic() + seconds
    while (time.monotonic() < deadline and not sh.stop
           and sh.published() < MAX_BATCHES):
        time.sleep(0.05)
    sh.stop = True
    for t in threads:
        t.join(60)
    assert not sh.errors, "\n".join(sh.errors)

    conn = connect(path)
    final = scheme.level([floats(r[0]) for r in conn.execute(
        "SELECT vector FROM c WHERE id IN (0,1,2,3,4,5,6,7)")], "final")
    contended = set(floats(conn.execute(
        f"SELECT vector FROM {scheme.contended} WHERE id = ?",
        (CONTENDED,)).fetchone()[0]))
    if scheme.has_state:
        assert read_level(conn, scheme, *STATE_READ) == final
    for table in sorted({"c", scheme.contended}):
        conn.execute(f"INSERT INTO {table}({table}) "
                     "VALUES ('integrity-check')")
    conn.close()
    assert final == sh.committed, \
        f"{sh.committed} batches committed, the table shows {final}"
    assert contended == {scheme.value_at[sh.contender_ok]}, \
        f"{sh.contender_ok} successful contender calls, row holds {contended}"
    assert sh.reads > 0 and sh.committed > 0
    say(request, f"\nconcurrency ({optimizer}): {sh.committed} batches "
                 "committed while "
                 f"{sh.reads} reads were checked; {sh.busy} SQLITE_BUSY "
                 f"returned to the caller, {sh.contender_ok} contending "
                 f"writes succeeded, longest wait {sh.max_wait * 1000:.0f} ms")
