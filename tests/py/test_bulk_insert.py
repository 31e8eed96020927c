"""Bulk INSERT through the insert buffer (README "Bulk insert"): a statement
in autocommit mode hands rows with new, ascending ids to a buffer that is
written many rows at a time; every test compares the result with the same
statement on an ordinary table, or with the table before the statement.

    EMBED_EXT=$PWD/embed /usr/bin/python3 -m pytest -q tests/py/test_bulk_insert.py
"""
import os
import sqlite3

import numpy as np
import pytest

from conftest import EXT, connect, one, to_blob, rows

DIM = 8
N = 1000  # many batches of the buffer (256 rows in memory, 32 in a file)


def make_src(conn, ids, seed=0):
    rng = np.random.default_rng(seed)
    conn.execute("CREATE TABLE src(id INTEGER PRIMARY KEY, v BLOB)")
    data = {int(i): rng.standard_normal(DIM).astype(np.float32) for i in ids}
    conn.executemany("INSERT INTO src VALUES (?, ?)",
                     [(i, to_blob(v)) for i, v in data.items()])
    return data


def open_pair(tmp_path, where):
    path = ":memory:" if where == "memory" else str(tmp_path / "bulk.db")
    conn = connect(path)
    if where == "file":
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"CREATE VIRTUAL TABLE tok USING embedding(dim={DIM}, "
                 "num_embeddings=10, seed=3)")
    conn.execute("CREATE TABLE plain(id INTEGER PRIMARY KEY, vector BLOB)")
    conn.execute("INSERT INTO plain SELECT id, vector FROM tok")
    return conn


def table_state(conn, table="tok"):
    return {i: v.tobytes() for i, v in rows(conn, table).items()}


@pytest.mark.parametrize("where", ["memory", "file"])
def test_bulk_insert_equals_plain_table(tmp_path, where):
    conn = open_pair(tmp_path, where)
    make_src(conn, range(100, 100 + N))
    log_before = one(conn, "SELECT count(*) FROM tok_log")
    for table in ("tok", "plain"):
        conn.execute(f"INSERT INTO {table}(id, vector) SELECT id, v FROM src")
        # what SQLite reports for the statement matches an ordinary table's
        assert one(conn, "SELECT changes()") == N
        assert conn.execute("SELECT last_insert_rowid()").fetchone()[0] == \
            100 + N - 1
    assert table_state(conn) == table_state(conn, "plain")
    assert one(conn, "SELECT count(*) FROM tok_vectors") == N + 10
    # the statement's change log is one entry naming every row it wrote
    # (the buffer's own multi-row INSERTs add none)
    assert one(conn, "SELECT count(*) FROM tok_log") == log_before + 1
    newest = one(conn, "SELECT ids FROM tok_log ORDER BY seq DESC LIMIT 1")
    assert np.frombuffer(newest, "<i8").tolist() == list(range(100, 100 + N))
    other = connect(str(tmp_path / "bulk.db")) if where == "file" else None
    if other:  # committed: another connection sees every row
        assert table_state(other) == table_state(conn, "plain")
    check = conn.execute(
        "INSERT INTO tok(tok) VALUES ('integrity-check')").fetchall()
    assert check == []


@pytest.mark.parametrize("limit", [2, 3, 7])
def test_lowered_variable_limit_still_inserts_in_batches(tmp_path, limit):
    """The buffer's multi-row INSERT takes two parameters a row: a
    connection whose SQLITE_LIMIT_VARIABLE_NUMBER is lowered gets smaller
    batches (one row at a time below four), and the same rows."""
    conn = open_pair(tmp_path, "memory")
    make_src(conn, range(100, 100 + N))
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
    for table in ("tok", "plain"):
        conn.execute(f"INSERT INTO {table}(id, vector) SELECT id, v FROM src")
    assert table_state(conn) == table_state(conn, "plain")


@pytest.mark.parametrize("where", ["memory", "file"])
def test_statement_reads_its_own_earlier_rows(tmp_path, where):
    # each odd id copies the even row the same statement inserted just
    # before it: the buffer is written before the row is read
    conn = open_pair(tmp_path, where)
    data = make_src(conn, range(100, 100 + N))
    conn.execute(
        "INSERT INTO tok(id, vector) SELECT id, CASE WHEN id % 2 = 0 THEN v "
        "ELSE embed_lookup('tok', id - 1) END FROM src ORDER BY id")
    got = rows(conn, "tok")
    for i in range(100, 100 + N):
        want = data[i] if i % 2 == 0 else data[i - 1]
        assert np.array_equal(got[i], want), i


@pytest.mark.parametrize("where", ["memory", "file"])
@pytest.mark.parametrize("bad", ["duplicate", "dimension", "nan"])
def test_failing_row_late_in_statement_changes_nothing(tmp_path, where, bad):
    conn = open_pair(tmp_path, where)
    make_src(conn, range(100, 100 + N))
    # the last row (after many buffered batches) fails the statement
    if bad == "duplicate":
        conn.execute("INSERT INTO src VALUES (?, ?)",
                     (100 + N, None))
        sql = ("INSERT INTO tok(id, vector) SELECT CASE WHEN v IS NULL "
               "THEN 5 ELSE id END, coalesce(v, zeroblob(32)) FROM src "
               "ORDER BY id")
        err = sqlite3.IntegrityError
    else:
        value = (to_blob(np.zeros(DIM + 1)) if bad == "dimension" else
                 to_blob(np.full(DIM, np.nan)))
        conn.execute("INSERT INTO src VALUES (?, ?)", (100 + N, value))
        sql = "INSERT INTO tok(id, vector) SELECT id, v FROM src ORDER BY id"
        err = sqlite3.Error
    before = table_state(conn)
    log_before = one(conn, "SELECT count(*) FROM tok_log")
    q = to_blob(np.ones(DIM))
    search_before = conn.execute(
        "SELECT id, distance FROM tok WHERE vector MATCH ? AND k = 5",
        (q,)).fetchall()
    with pytest.raises(err):
        conn.execute(sql)
    assert table_state(conn) == before
    assert one(conn, "SELECT count(*) FROM tok_vectors") == 10
    assert one(conn, "SELECT count(*) FROM tok_log") == log_before
    assert conn.execute(
        "SELECT id, distance FROM tok WHERE vector MATCH ? AND k = 5",
        (q,)).fetchall() == search_before
    # and the same statement without the bad row then works
    conn.execute(f"DELETE FROM src WHERE id = {100 + N}")
    conn.execute("INSERT INTO tok(id, vector) SELECT id, v FROM src")
    assert one(conn, "SELECT count(*) FROM tok") == N + 10


@pytest.mark.parametrize("mode", ["OR IGNORE", "OR REPLACE", ""])
@pytest.mark.parametrize("order", ["ASC", "DESC", "RANDOM"])
def test_conflict_modes_and_orders_equal_plain_table(tmp_path, mode, order):
    # new ids above the table's, old ids inside it, in every order: the
    # buffered and the direct path together give the ordinary table's result
    conn = open_pair(tmp_path, "memory")
    ids = list(range(5, 10)) + list(range(200, 200 + 300)) + [-3, 0]
    if mode == "":
        ids = [i for i in ids if i >= 10 or i < 0]
    make_src(conn, ids, seed=1)
    by = {"ASC": "id", "DESC": "id DESC", "RANDOM": "(id * 7919) % 301"}[order]
    for table in ("tok", "plain"):
        conn.execute(f"INSERT {mode} INTO {table}(id, vector) "
                     f"SELECT id, v FROM src ORDER BY {by}")
    assert table_state(conn) == table_state(conn, "plain")


@pytest.mark.parametrize("where", ["memory", "file"])
def test_explicit_transaction_rows_are_in_the_shadow_table_after_each_statement(
        tmp_path, where):
    # inside BEGIN (a memory database buffers there, a file does not) a
    # multi-row statement's rows wait only until its end (its statement
    # journal's release); a one-row INSERT, which has no such end, goes in
    # at once; ROLLBACK TO and ROLLBACK take rows back
    conn = open_pair(tmp_path, where)
    data = make_src(conn, range(100, 100 + N))
    before = table_state(conn)
    conn.execute("BEGIN")
    conn.execute("INSERT INTO tok(id, vector) VALUES (50, ?)",
                 (to_blob(np.ones(DIM)),))
    assert one(conn, "SELECT count(*) FROM tok_vectors") == 11
    conn.execute("INSERT INTO tok(id, vector) SELECT id, v FROM src "
                 "WHERE id < 600")
    assert one(conn, "SELECT count(*) FROM tok_vectors") == 11 + 500
    conn.execute("SAVEPOINT s")
    conn.execute("INSERT INTO tok(id, vector) SELECT id, v FROM src "
                 "WHERE id >= 600")
    assert one(conn, "SELECT count(*) FROM tok_vectors") == N + 11
    conn.execute("ROLLBACK TO s")
    assert one(conn, "SELECT count(*) FROM tok_vectors") == 11 + 500
    conn.execute("INSERT INTO tok(id, vector) SELECT id, v FROM src "
                 "WHERE id >= 600")
    conn.execute("RELEASE s")
    got = rows(conn, "tok")
    assert all(np.array_equal(got[i], data[i]) for i in data)
    conn.execute("ROLLBACK")
    assert table_state(conn) == before


@pytest.mark.parametrize("where", ["memory", "file"])
def test_explicit_transaction_one_row_statements_never_wait(tmp_path, where):
    # without a statement cache every statement is prepared and finalized,
    # so a new one often gets the address of the one before: each one-row
    # INSERT must still be in the shadow table when it returns
    path = ":memory:" if where == "memory" else str(tmp_path / "one.db")
    conn = sqlite3.connect(path, isolation_level=None, cached_statements=0)
    conn.enable_load_extension(True)
    conn.load_extension(EXT)
    conn.execute(f"CREATE VIRTUAL TABLE tok USING embedding(dim={DIM})")
    conn.execute("BEGIN")
    for i in range(200):
        conn.execute(f"INSERT INTO tok(id, vector) VALUES ({1000 + i}, "
                     f"embed_vector('[{i}, 1, 2, 3, 4, 5, 6, 7]'))")
        assert conn.execute("SELECT count(*) FROM tok_vectors").fetchone()[0] \
            == i + 1
    conn.execute("COMMIT")
    assert conn.execute("SELECT count(*) FROM tok").fetchone()[0] == 200


OLD_CHECK = "CHECK (typeof(vector) = 'blob')"


@pytest.mark.parametrize("form", ["autocommit", "begin"])
def test_table_made_with_the_earlier_check_inserts_the_same(tmp_path, form):
    # tables made before this version have CHECK (typeof(vector) = 'blob')
    # on T_vectors; their flushes keep a statement journal, so inside BEGIN
    # a file inserts row by row: the result is the same
    path = str(tmp_path / "bulk.db")
    conn = open_pair(tmp_path, "file")
    sql = one(conn, "SELECT sql FROM sqlite_schema WHERE name = 'tok_vectors'")
    assert "CHECK (vector >= x'')" in sql
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_schema SET sql = replace(sql, ?, ?) "
                 "WHERE name = 'tok_vectors'",
                 ("CHECK (vector >= x'')", OLD_CHECK))
    conn.close()
    conn = connect(path)
    assert OLD_CHECK in one(
        conn, "SELECT sql FROM sqlite_schema WHERE name = 'tok_vectors'")
    make_src(conn, range(100, 100 + N))
    for table in ("tok", "plain"):
        if form == "begin":
            conn.execute("BEGIN")
        conn.execute(f"INSERT INTO {table}(id, vector) SELECT id, v FROM src")
        assert one(conn, "SELECT changes()") == N
        if form == "begin":
            conn.execute("COMMIT")
    assert table_state(conn) == table_state(conn, "plain")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("INSERT INTO tok_vectors VALUES (5000, 'text')")
    assert conn.execute(
        "INSERT INTO tok(tok) VALUES ('integrity-check')").fetchall() == []


def test_check_refuses_what_is_not_a_blob(tmp_path):
    # CHECK (vector >= x''): every BLOB sorts at or after the empty one,
    # every number and text before it, so it holds exactly for BLOBs
    conn = open_pair(tmp_path, "file")
    conn.execute("INSERT INTO tok_vectors VALUES (5000, ?)",
                 (to_blob(np.ones(DIM)),))
    conn.execute("INSERT INTO tok_vectors VALUES (5001, x'')")
    for value in ("text", "", 3, -2.5):
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute("INSERT INTO tok_vectors VALUES (5002, ?)", (value,))
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        conn.execute("INSERT INTO tok_vectors VALUES (5002, NULL)")


@pytest.mark.parametrize("where", ["memory", "file"])
@pytest.mark.parametrize("form", ["autocommit", "begin"])
def test_row_written_behind_the_tables_back_fails_the_insert(
        tmp_path, where, form):
    # a function of the SELECT writes T_vectors directly, at an id the
    # buffer holds: its flush cannot add every row it holds (a file's
    # INSERT OR IGNORE would skip it), so the statement fails and leaves
    # nothing, as a plain INSERT's UNIQUE error does
    conn = open_pair(tmp_path, where)
    make_src(conn, range(100, 100 + N))
    before = table_state(conn)

    def sneak(i):
        if i == 120:
            conn.execute("INSERT INTO tok_vectors VALUES (130, ?)",
                         (to_blob(np.zeros(DIM)),))
        return i
    conn.create_function("sneak", 1, sneak)
    if form == "begin":
        conn.execute("BEGIN")
    with pytest.raises(sqlite3.IntegrityError, match="^embedding tok: "):
        conn.execute("INSERT INTO tok(id, vector) SELECT sneak(id), v FROM src")
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    assert table_state(conn) == before
    assert one(conn, "SELECT count(*) FROM tok_vectors") == 10
    assert conn.execute(
        "INSERT INTO tok(tok) VALUES ('integrity-check')").fetchall() == []


def test_bulk_insert_while_another_statement_reads(tmp_path):
    # a statement of the same connection is still stepping (SQLite then
    # gives the insert a statement journal): rows land, the reader goes on
    conn = open_pair(tmp_path, "file")
    data = make_src(conn, range(100, 100 + N))
    reader = conn.execute("SELECT id FROM src ORDER BY id")
    first = reader.fetchone()
    conn.execute("INSERT INTO tok(id, vector) SELECT id, v FROM src")
    rest = reader.fetchall()
    assert [first[0]] + [r[0] for r in rest] == sorted(data)
    got = rows(conn, "tok")
    assert all(np.array_equal(got[i], data[i]) for i in data)


def test_search_after_bulk_insert_sees_every_row(tmp_path):
    conn = open_pair(tmp_path, "file")
    q = np.ones(DIM, dtype=np.float32)
    conn.execute("SELECT id FROM tok WHERE vector MATCH ? AND k = 3",
                 (to_blob(q),)).fetchall()  # a copy exists before the insert
    data = make_src(conn, range(100, 100 + N), seed=2)
    data.update(rows(conn, "tok"))
    conn.execute("INSERT INTO tok(id, vector) SELECT id, v FROM src")
    assert search_top10(conn, q) == brute_top10(data, q)


def search_top10(conn, q):
    return [r[0] for r in conn.execute(
        "SELECT id FROM tok WHERE vector MATCH ? AND k = 10", (to_blob(q),))]


def brute_top10(data, q):
    """The 10 ids nearest q by cosine, in float64 (ties by id)."""
    ids = sorted(data)
    mat = np.stack([data[i] for i in ids]).astype(np.float64)
    cos = mat @ q / (np.linalg.norm(mat, axis=1) * np.linalg.norm(q))
    return [ids[j] for j in np.argsort(-cos, kind="stable")[:10]]


@pytest.mark.parametrize("limit", [100, 1000])
def test_lowered_length_limit_splits_change_log_entries(tmp_path, limit):
    """A change-log entry is a BLOB of 8 bytes an id; under a lowered
    SQLITE_LIMIT_LENGTH a bulk insert writes several entries instead of
    failing (a training call's entries go the same way), and a search
    whose copy was made before sees every row."""
    conn = open_pair(tmp_path, "memory")
    q = np.ones(DIM, dtype=np.float32)
    search_top10(conn, q)  # a copy exists before the writes
    data = make_src(conn, range(100, 100 + N), seed=4)
    data.update(rows(conn, "tok"))
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limit)
    per_entry = (limit - 32) // 8
    entries = one(conn, "SELECT count(*) FROM tok_log")
    conn.execute("INSERT INTO tok(id, vector) SELECT id, v FROM src")
    assert one(conn, "SELECT count(*) FROM tok_log") == \
        entries + -(-N // per_entry)
    assert search_top10(conn, q) == brute_top10(data, q)



# ------------------------------------------------ I/O errors (apsw's VFS)

def _faulty_vfs(apsw, plan):
    """A VFS over the default one whose xWrite and xSync calls are counted
    across every file (database, journal, WAL, statement journal) and fail
    from call number plan["at"] on (SQLITE_IOERR)."""

    class File(apsw.VFSFile):
        def __init__(self, vfs, name, flags):
            super().__init__("", name, flags)

        def _tick(self):
            plan["calls"] += 1
            if plan["at"] and plan["calls"] >= plan["at"]:
                plan["hit"] += 1
                raise apsw.IOError("injected")

        def xWrite(self, data, offset):
            self._tick()
            return super().xWrite(data, offset)

        def xSync(self, flags):
            self._tick()
            return super().xSync(flags)

    class VFS(apsw.VFS):
        def __init__(self):
            super().__init__("bulkfaulty", "")

        def xOpen(self, name, flags):
            return File(self, name, flags)

    return VFS()


@pytest.mark.parametrize("journal", ["wal", "delete"])
@pytest.mark.parametrize("form", ["autocommit", "begin"])
def test_io_error_anywhere_in_bulk_insert_is_all_or_nothing(tmp_path, journal,
                                                            form):
    # inside BEGIN the buffer's flushes (INSERT OR IGNORE, no statement
    # journal) fail mid-way too: SQLite then rolls the transaction back
    apsw = pytest.importorskip("apsw")
    plan = {"at": 0, "calls": 0, "hit": 0}
    vfs = _faulty_vfs(apsw, plan)  # noqa: F841 (registered while alive)
    path = str(tmp_path / "faults.db")
    n = 1500  # 23 batches of 64 rows, with a 5-page cache: spills mid-way
    src = np.random.default_rng(4).standard_normal((n, DIM)).astype(np.float32)
    setup = connect(path)
    setup.execute(f"PRAGMA journal_mode={journal}")
    setup.execute(f"CREATE VIRTUAL TABLE tok USING embedding(dim={DIM}, "
                  "num_embeddings=20, seed=9)")
    setup.execute("CREATE TABLE src(id INTEGER PRIMARY KEY, v BLOB)")
    setup.executemany("INSERT INTO src VALUES (?, ?)",
                      [(100 + i, to_blob(src[i])) for i in range(n)])
    before = table_state(setup)
    after = dict(before)
    after.update({100 + i: src[i].tobytes() for i in range(n)})
    setup.close()
    image = open(path, "rb").read()

    def attempt(at):
        for suffix in ("-wal", "-shm", "-journal"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        with open(path, "wb") as f:
            f.write(image)
        plan.update(at=0, calls=0)
        conn = apsw.Connection(path, vfs="bulkfaulty")
        conn.enableloadextension(True)
        conn.loadextension(EXT)
        conn.execute("PRAGMA cache_size=5")
        plan.update(at=at, calls=0, hit=0)
        failed = False
        try:
            if form == "begin":
                conn.execute("BEGIN")
            conn.execute("INSERT INTO tok(id, vector) SELECT id, v FROM src")
            if form == "begin":
                conn.execute("COMMIT")
        except apsw.Error:
            failed = True
            plan["at"] = 0
            if not conn.getautocommit():
                conn.execute("ROLLBACK")
        plan["at"] = 0
        calls, hit = plan["calls"], plan["hit"]
        conn.close()
        check = connect(path)
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        state = table_state(check)
        assert state in (before, after), f"fault at call {at}: partial insert"
        if not failed:
            assert state == after, f"fault at call {at}: success lost rows"
        assert check.execute(
            "INSERT INTO tok(tok) VALUES ('integrity-check')").fetchall() == []
        check.close()
        return calls, hit, failed

    total, _, failed = attempt(0)
    assert not failed and total > 10
    outcomes = set()
    for at in range(1, total + 1):
        _, hit, failed = attempt(at)
        assert hit > 0, f"call {at} was never made"
        outcomes.add(failed)
    assert True in outcomes  # the faults did surface as errors
