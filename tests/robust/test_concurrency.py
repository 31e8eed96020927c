"""Concurrency in WAL mode: one connection trains while others look up and
search; readers never see a torn row or a half-applied batch, see every
batch committed before their read began, and SQLITE_BUSY reaches the caller.

    EMBED_EXT=$PWD/embed /usr/bin/python3 -m pytest -q tests/robust/test_concurrency.py
    EMBED_CONCURRENCY_SECONDS=60 ...      (the default is 4)

The table (dim 16, metric l2, init zeros) has a fixed set S of 8 rows and 200
other rows. Every batch the trainer commits adds exactly 1 to every element
of every row of S (SGD, lr 1, gradient -1: exact in float32), sometimes in
one embed_update, sometimes split over two statements of one transaction,
sometimes as one autocommit call. So any read of S must show 8 identical
rows whose elements are all one integer m (a torn row or a half batch
breaks that), m must be at least the number of batches committed before the
read began (a stale search snapshot breaks that), and m never goes back.

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


def level(rows, what):
    """The m of 8 rows of S (each a tuple of DIM floats); fails on a torn
    row or a half-applied batch."""
    assert len(rows) == len(S), f"{what}: {len(rows)} rows of S"
    values = {v for r in rows for v in r}
    assert len(values) == 1, f"{what}: torn or half-applied: {sorted(values)}"
    m = values.pop()
    assert m == int(m) and m >= 0, f"{what}: {m}"
    return int(m)


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


def trainer(path, sh):
    conn = connect(path)
    grads = struct.pack("<%df" % (len(S) * DIM), *([-1.0] * (len(S) * DIM)))
    half = struct.pack("<%df" % (4 * DIM), *([-1.0] * (4 * DIM)))
    n = 0
    try:
        while not sh.stop:
            n += 1
            style = n % 3
            if style == 0:  # one autocommit call (its own transaction)
                conn.execute("SELECT embed_update('c', ?, ?, 1)",
                             (S_JSON, grads))
            else:
                conn.execute("BEGIN IMMEDIATE")
                if style == 1:
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


def read_level(conn, name, sql):
    params = (ZERO,) if "MATCH" in sql else ()
    rows = conn.execute(sql, params).fetchall()
    if name == "lookup":
        vals = floats(rows[0][0])
        return level([vals[i * DIM:(i + 1) * DIM] for i in range(len(S))],
                     name)
    if name.startswith("search"):
        rows = [r for r in rows if r[0] in S]
        m = level([floats(r[2]) for r in rows], name)
        for r in rows:  # l2 distance to the zero vector: sqrt(16) m = 4 m
            assert abs(r[1] - 4 * m) <= 1e-9 * max(1, m), \
                f"{name}: distance {r[1]} for m {m}"
        return m
    return level([floats(r[0]) for r in rows], name)


def reader(path, sh, which):
    conn = connect(path)
    last = 0
    i = 0
    try:
        while not sh.stop:
            i += 1
            if which == "txn" and i % 5 == 0:  # a long read transaction
                conn.execute("BEGIN")
                a = read_level(conn, "search", READS[3][1])
                time.sleep(0.005)
                b = read_level(conn, "IN", READS[0][1])
                c = read_level(conn, "lookup", READS[2][1])
                conn.execute("COMMIT")
                if not a == b == c:
                    sh.fail(f"one read transaction saw {a}, {b}, {c}")
                continue
            name, sql = READS[(i + which_index(which)) % len(READS)]
            before = sh.published()
            m = read_level(conn, name, sql)
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


def contender(path, sh, timeout):
    """Writes row CONTENDED (+1 per successful call) while the trainer
    holds the lock; BUSY must come back promptly as an error."""
    conn = connect(path, timeout=timeout)
    grad = struct.pack("<%df" % DIM, *([-1.0] * DIM))
    i = 0
    try:
        while not sh.stop:
            i += 1
            explicit = i % 2 == 0
            t0 = time.monotonic()
            try:
                if explicit:
                    conn.execute("BEGIN")
                r = conn.execute("SELECT embed_update('c', ?, ?, 1)",
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


def test_train_while_reading(tmp_path, request):
    seconds = float(os.environ.get("EMBED_CONCURRENCY_SECONDS", "4"))
    path = str(tmp_path / "c.db")
    conn = connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE VIRTUAL TABLE c USING embedding(dim=16, init=zeros, "
                 "metric=l2)")
    conn.execute("BEGIN")
    for i in S:
        conn.execute("INSERT INTO c(id) VALUES (?)", (i,))
    for i in range(100, 300):  # far from the zero query: rank after S
        conn.execute("INSERT INTO c(id, vector) VALUES (?, ?)",
                     (i, struct.pack("<%df" % DIM, *([1e6 + i] * DIM))))
    conn.execute("INSERT INTO c(id) VALUES (?)", (CONTENDED,))
    conn.execute("COMMIT")
    conn.close()

    sh = Shared()
    threads = [threading.Thread(target=trainer, args=(path, sh))]
    threads += [threading.Thread(target=reader, args=(path, sh, w))
                for w in ("a", "b", "txn")]
    threads += [threading.Thread(target=contender, args=(path, sh, t))
                for t in CONTENDER_TIMEOUTS]
    for t in threads:
        t.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not sh.stop:
        time.sleep(0.05)
    sh.stop = True
    for t in threads:
        t.join(60)
    assert not sh.errors, "\n".join(sh.errors)

    conn = connect(path)
    final = level([floats(r[0]) for r in conn.execute(
        "SELECT vector FROM c WHERE id IN (0,1,2,3,4,5,6,7)")], "final")
    contended = set(floats(conn.execute(
        "SELECT vector FROM c WHERE id = ?", (CONTENDED,)).fetchone()[0]))
    conn.close()
    assert final == sh.committed, \
        f"{sh.committed} batches committed, the table shows {final}"
    assert contended == {float(sh.contender_ok)}, \
        f"{sh.contender_ok} successful contender calls, row holds {contended}"
    assert sh.reads > 0 and sh.committed > 0
    say(request, f"\nconcurrency: {sh.committed} batches committed while "
                 f"{sh.reads} reads were checked; {sh.busy} SQLITE_BUSY "
                 f"returned to the caller, {sh.contender_ok} contending "
                 f"writes succeeded, longest wait {sh.max_wait * 1000:.0f} ms")
