"""The command column (README: Commands): `INSERT INTO t(t) VALUES ('...')`
runs a command on the table instead of inserting a row, and the integrity
check behind 'integrity-check' and, on SQLite 3.44 and later, PRAGMA
integrity_check.

DEFECTS damage a trained table in each way the check looks for (a vector's
type, length or finiteness; an optimizer state's type, length, finiteness,
or id; the config rows; a shadow table); each must make 'integrity-check'
fail with its exact message, naming the table, the first offending id and
what is wrong, with SQLITE_CORRUPT_VTAB, and change nothing. On SQLite 3.44+
(make test-newer-sqlite), PRAGMA integrity_check and quick_check report the
same message. The figure printed is the number of defects found."""
import sqlite3

import pytest

from conftest import as_layout_2, connect, f32, file_hash, one, say

NAN, INF = float("nan"), float("inf")
HAS_XINTEGRITY = sqlite3.sqlite_version_info >= (3, 44, 0)
STATE_BYTES = 4 * 4  # sgd momentum: the buffer, dim 4
MOMENTUM = "sgd, momentum=0.9"  # its buffers after the weights (layout 4)
# momentum in layout 2, as earlier releases made it: its states are
# t_state's rows (made from a fresh layout-4 table with plain SQL)
LEGACY = "layout 2: sgd, momentum=0.9"
# adam keeps each row's state (m and v, 32 bytes) after its weight in
# t_vectors, from the row's insert on (layout 3)


def trained(conn, optimizer=LEGACY):
    create = ("CREATE VIRTUAL TABLE t USING embedding(dim=4, num_embeddings=6, "
              f"seed=3, optimizer={optimizer.replace('layout 2: ', '')})")
    if optimizer == LEGACY:  # made and rewritten on other connections
        path = conn.execute("PRAGMA database_list").fetchone()[2]
        assert path, "a layout-2 table is made in a file"
        other = connect(path)
        other.execute(create)
        other.close()
        as_layout_2(path, "t", 4)
    else:
        conn.execute(create)
    conn.execute("SELECT embed_update('t', '[1, 2, 4]', '[[1,0,0,0],"
                 "[0,1,0,0],[0,0,1,0]]', 0.1)").fetchall()


def shadow_rows(conn):
    return [conn.execute(f"SELECT * FROM t_{s} ORDER BY 1").fetchall()
            for s in ("config", "vectors", "state")]


def damage(conn, statements):
    conn.execute("PRAGMA ignore_check_constraints = ON")
    for sql, *params in statements:
        conn.execute(sql, params)
    conn.execute("PRAGMA ignore_check_constraints = OFF")


def drop_not_null(path, table):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_schema SET sql = replace(sql, 'NOT NULL', '')"
                 " WHERE name = ?", (table,))
    conn.close()


def vec(*xs):
    return ("UPDATE t_vectors SET vector = ? WHERE id = 3", *xs)


def state(x, id_=2):
    return ("UPDATE t_state SET state = ? WHERE id = %d" % id_, x)


def row_state(*state):
    """Row 3 of an adam table with its stored weight and the given state."""
    return ("UPDATE t_vectors SET vector = CAST(substr(vector, 1, 16) || ? AS BLOB) "
            "WHERE id = 3", f32(*state))


def msg(text):
    return "embedding t: " + text


# (name, statements (sql, params...), message[, optimizer[, reopen]]):
# reopen: damage a closed file, then open it (the config read at connect)
DEFECTS = [
    ("vector NaN", [vec(f32(1, NAN, 0, 0))],
     msg("corrupt vector for id 3 (element 1 is not finite)")),
    ("vector +Inf", [vec(f32(1, 0, 0, INF))],
     msg("corrupt vector for id 3 (element 3 is not finite)")),
    ("vector -Inf", [vec(f32(-INF, 0, 0, 0))],
     msg("corrupt vector for id 3 (element 0 is not finite)")),
    ("vector short", [vec(b"\x00" * 4)],
     msg("corrupt vector for id 3 (4 bytes, expected 16)")),
    ("vector long", [vec(b"\x00" * 20)],
     msg("corrupt vector for id 3 (20 bytes, expected 16)")),
    ("vector empty", [vec(b"")],
     msg("corrupt vector for id 3 (0 bytes, expected 16)")),
    ("vector text", [vec("[1, 2, 3, 4]")],
     msg("corrupt vector for id 3 (TEXT, not a BLOB)")),
    ("vector text of 16 bytes", [vec("abcdefghijklmnop")],
     msg("corrupt vector for id 3 (TEXT, not a BLOB)")),
    ("vector integer", [vec(7)],
     msg("corrupt vector for id 3 (INTEGER, not a BLOB)")),
    ("vector real", [vec(2.5)], msg("corrupt vector for id 3 (REAL, not a BLOB)")),
    ("vector NULL", [("UPDATE t_vectors SET vector = NULL WHERE id = 3",)],
     msg("corrupt vector for id 3 (NULL, not a BLOB)"), LEGACY, "t_vectors"),
    ("the first of two bad vectors",
     [("UPDATE t_vectors SET vector = x'00' WHERE id IN (5, 2)",)],
     msg("corrupt vector for id 2 (1 bytes, expected 16)")),
    ("a bad vector at the largest id",
     [("INSERT INTO t_vectors VALUES (9223372036854775807, x'0000')",)],
     msg("corrupt vector for id 9223372036854775807 (2 bytes, expected 16)")),
    ("state short", [state(b"\x00" * 4)],
     msg("corrupt optimizer state for id 2 (4 bytes, expected 16)")),
    ("state long", [state(b"\x00" * (STATE_BYTES + 4))],
     msg("corrupt optimizer state for id 2 (20 bytes, expected 16)")),
    ("state NaN", [state(f32(*([0.0] * 3 + [NAN])))],
     msg("corrupt optimizer state for id 2 (element 3 is not finite)")),
    ("state text", [state("x" * STATE_BYTES)],
     msg("corrupt optimizer state for id 2 (TEXT, not a BLOB)")),
    ("state integer", [state(5)],
     msg("corrupt optimizer state for id 2 (INTEGER, not a BLOB)")),
    ("state NULL", [("UPDATE t_state SET state = NULL WHERE id = 2",)],
     msg("corrupt optimizer state for id 2 (NULL, not a BLOB)"), LEGACY,
     "t_state"),
    ("state for a missing id",
     [("INSERT INTO t_state VALUES (99, ?)", b"\x00" * STATE_BYTES)],
     msg("corrupt t_state: a state for id 99, which the table does not have")),
    ("state of a deleted row", [("DELETE FROM t_vectors WHERE id = 4",)],
     msg("corrupt t_state: a state for id 4, which the table does not have")),
    ("state under plain sgd", [("INSERT INTO t_state VALUES (1, x'')",)],
     msg("corrupt t_state: a state for id 1, but the optimizer keeps none"),
     "sgd"),
    ("config changed while open",
     [("UPDATE t_config SET value = 'l2' WHERE key = 'metric'",)],
     msg("corrupt t_config: metric is 'l2', but the table was opened with"
         " 'cosine'")),
    ("config seed changed while open",
     [("UPDATE t_config SET value = '4' WHERE key = 'seed'",)],
     msg("corrupt t_config: seed is '4', but the table was opened with '3'")),
    ("config unknown key", [("INSERT INTO t_config VALUES ('colour', 'red')",)],
     msg("corrupt t_config: unknown option 'colour'")),
    ("config layout row deleted while open",
     [("DELETE FROM t_config WHERE key = 'layout'",)],
     msg("corrupt t_config: layout is 1, but the table was opened with 2")),
    ("config layout unknown", [("UPDATE t_config SET value = '9' WHERE key = "
                                "'layout'",)],
     msg("corrupt t_config: unknown layout '9' (this embed reads layouts up "
         "to 4)")),
    # adam: the state after the weight in each t_vectors row (layout 3)
    ("row without its state", [vec(f32(1, 2, 3, 4))],
     msg("corrupt vector for id 3 (16 bytes, expected 48 with the optimizer "
         "state)"), "adam"),
    ("row state NaN", [row_state(*([0.0] * 5 + [NAN] + [0.0] * 2))],
     msg("corrupt optimizer state for id 3 (element 5 is not finite)"),
     "adam"),
    ("row state -Inf", [row_state(*([0.0] * 7 + [-INF]))],
     msg("corrupt optimizer state for id 3 (element 7 is not finite)"),
     "adam"),
    ("row vector NaN", [("UPDATE t_vectors SET vector = CAST(? || substr(vector, "
                         "17) AS BLOB) WHERE id = 3", f32(NAN, 0, 0, 0))],
     msg("corrupt vector for id 3 (element 0 is not finite)"), "adam"),
    ("a t_state row under adam", [("INSERT INTO t_state VALUES (1, ?)",
                                   b"\x00" * 32)],
     msg("corrupt t_state: a state for id 1, but the table keeps its states "
         "in t_vectors"), "adam"),
    ("config layout 3 row deleted while open",
     [("DELETE FROM t_config WHERE key = 'layout'",)],
     msg("corrupt t_config: layout is 1, but the table was opened with 3"),
     "adam"),
    # momentum: the buffer after the weight, t_state marks the rows with one
    ("momentum row state NaN", [row_state(0.0, 0.0, NAN, 0.0)],
     msg("corrupt optimizer state for id 3 (element 2 is not finite)"),
     MOMENTUM),
    ("a mark that is not empty", [state(b"\x00" * STATE_BYTES)],
     msg("corrupt t_state: the mark of id 2 is not an empty BLOB (the table "
         "keeps its momentum buffers in t_vectors)"), MOMENTUM),
    ("a mark that is NULL", [("UPDATE t_state SET state = NULL WHERE id = 2",)],
     msg("corrupt t_state: the mark of id 2 is not an empty BLOB (the table "
         "keeps its momentum buffers in t_vectors)"), MOMENTUM, "t_state"),
    ("a mark for a missing id", [("INSERT INTO t_state VALUES (99, x'')",)],
     msg("corrupt t_state: a state for id 99, which the table does not have"),
     MOMENTUM),
    ("a buffer without its mark", [("DELETE FROM t_state WHERE id = 4",)],
     msg("corrupt t_vectors: id 4 holds a momentum buffer, but t_state has no "
         "mark for it"), MOMENTUM),
    ("config layout 4 row deleted while open",
     [("DELETE FROM t_config WHERE key = 'layout'",)],
     msg("corrupt t_config: layout is 1, but the table was opened with 4"),
     MOMENTUM),
    ("config value malformed",
     [("UPDATE t_config SET value = 'soon' WHERE key = 'eps'",)],
     msg("corrupt t_config: eps must be a positive number, got 'soon'"),
     "adam"),
    ("config step text",
     [("UPDATE t_config SET value = 'many' WHERE key = 'step'",)],
     msg("corrupt t_config: bad step count")),
    ("config step negative",
     [("UPDATE t_config SET value = -1 WHERE key = 'step'",)],
     msg("corrupt t_config: bad step count")),
    ("config step row missing", [("DELETE FROM t_config WHERE key = 'step'",)],
     msg("corrupt t_config: bad step count")),
    ("config dim altered in the file",
     [("UPDATE t_config SET value = '3' WHERE key = 'dim'",)],
     msg("corrupt vector for id 0 (16 bytes, expected 12)"), LEGACY, "reopen"),
    ("t_state replaced by a view",
     [("DROP TABLE t_state",),
      ("CREATE VIEW t_state AS SELECT 2 AS id, x'00' AS state",)],
     msg("shadow table t_state is a view, not a table")),
]


def pragma_rows(conn, pragma):
    """The rows of PRAGMA integrity_check (or another form) but SQLite's own
    findings in ordinary tables: a shadow table's CHECK constraint (typeof
    = 'blob') that a damaged value breaks, which SQLite reports too."""
    rows = [r[0] for r in conn.execute(f"PRAGMA {pragma}")]
    return [r for r in rows if not r.startswith("CHECK constraint failed in t_")]


@pytest.fixture(scope="module")
def found(request):
    names = []
    yield names
    say(request, f"\ncommands: {len(names)} of {len(DEFECTS)} integrity "
                 f"defects found with their exact message")


@pytest.mark.parametrize("case", DEFECTS, ids=[c[0] for c in DEFECTS])
def test_integrity_check_finds_the_defect(case, tmp_path, found):
    name, statements, message = case[:3]
    optimizer = case[3] if len(case) > 3 else LEGACY
    how = case[4] if len(case) > 4 else None
    path = str(tmp_path / "d.db")
    conn = connect(path)
    trained(conn, optimizer)
    assert one(conn, "SELECT count(*) FROM t") == 6  # connected
    if how:  # on the closed file, then open it again
        conn.close()
        if how != "reopen":
            drop_not_null(path, how)
        raw = sqlite3.connect(path, isolation_level=None)
        damage(raw, statements)
        raw.close()
        conn = connect(path)
    else:
        damage(conn, statements)
    before = file_hash(path), shadow_rows(conn) if "view" not in name else 0
    with pytest.raises(sqlite3.DatabaseError) as e:
        conn.execute("INSERT INTO t(t) VALUES ('integrity-check')")
    assert str(e.value) == message
    assert e.value.sqlite_errorname == "SQLITE_CORRUPT_VTAB"
    assert not conn.in_transaction
    assert (file_hash(path),
            shadow_rows(conn) if "view" not in name else 0) == before
    if HAS_XINTEGRITY and "view" not in name:
        for pragma in ("integrity_check", "quick_check", "integrity_check(t)"):
            assert pragma_rows(conn, pragma) == [message], pragma
        assert file_hash(path) == before[0]
    conn.close()
    found.append(name)


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "adam",
                                       "sgd, momentum=0.9"])
def test_a_sound_table_passes(db, optimizer):
    trained(db, optimizer)
    db.execute("INSERT INTO t(id) VALUES (-7)")
    db.execute("INSERT INTO t(t) VALUES ('integrity-check')")
    db.execute("INSERT INTO t(t) VALUES ('INTEGRITY-CHECK')")  # any case
    if HAS_XINTEGRITY:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_the_check_changes_nothing_and_keeps_last_insert_rowid(file_db,
                                                               db_path):
    trained(file_db)
    file_db.execute("CREATE TABLE x(a)")
    file_db.execute("INSERT INTO x VALUES (1), (2)")
    rowid = file_db.execute("SELECT last_insert_rowid()").fetchone()[0]
    before = file_hash(db_path), shadow_rows(file_db)
    cur = file_db.execute("INSERT INTO t(t) VALUES ('integrity-check')")
    assert cur.lastrowid == rowid == 2
    assert one(file_db, "SELECT last_insert_rowid()") == 2
    assert (file_hash(db_path), shadow_rows(file_db)) == before


def test_a_failed_check_leaves_the_open_table_as_it_was(file_db):
    """A check that stops at a damaged config row (one that sorts before the
    layout row) leaves the open table in its layout: once the row is
    repaired, writes are still logged for other connections' searches, and
    PRAGMA integrity_check still checks the change log."""
    trained(file_db)
    file_db.execute("INSERT INTO t_config VALUES ('colour', 'red')")
    for _ in range(2):
        with pytest.raises(sqlite3.DatabaseError) as e:
            file_db.execute("INSERT INTO t(t) VALUES ('integrity-check')")
        assert str(e.value) == msg("corrupt t_config: unknown option 'colour'")
    file_db.execute("DELETE FROM t_config WHERE key = 'colour'")
    logged = one(file_db, "SELECT count(*) FROM t_log")
    file_db.execute("UPDATE t SET vector = '[1, 2, 3, 4]' WHERE id = 5")
    file_db.execute("SELECT embed_update('t', 1, '[1, 1, 1, 1]', 0.1)")
    assert one(file_db, "SELECT count(*) FROM t_log") == logged + 2
    file_db.execute("INSERT INTO t(t) VALUES ('integrity-check')")
    if HAS_XINTEGRITY:
        file_db.execute("DROP TABLE t_log")
        assert pragma_rows(file_db, "integrity_check") == [
            msg("shadow table t_log is missing")]


def test_reset_optimizer_is_embed_optimizer_reset(db):
    """Momentum (layout 4): t_state marks the 3 rows with a buffer."""
    trained(db, MOMENTUM)
    weights = db.execute("SELECT id, vector FROM t").fetchall()
    assert one(db, "SELECT count(*) FROM t_state") == 3
    assert one(db, "SELECT value FROM t_config WHERE key = 'step'") == 1
    db.execute("INSERT INTO t(t) VALUES ('reset-optimizer')")
    assert one(db, "SELECT count(*) FROM t_state") == 0
    assert one(db, "SELECT value FROM t_config WHERE key = 'step'") == 0
    assert db.execute("SELECT id, vector FROM t").fetchall() == weights
    assert [one(db, "SELECT embed_optimizer_state('t', ?)", i)
            for i in range(6)] == [None] * 6
    # the same as the function: train again from the reset, both ways
    db.execute("CREATE VIRTUAL TABLE u USING embedding(dim=4, "
               f"num_embeddings=6, seed=3, optimizer={MOMENTUM})")
    for t in ("t", "u"):
        db.execute(f"SELECT embed_update('{t}', '[1, 2]', '[[1,1,1,1],"
                   "[2,2,2,2]]', 0.1)").fetchall()
    db.execute("SELECT embed_optimizer_reset('u')").fetchall()
    db.execute("INSERT INTO t(t) VALUES ('reset-optimizer')")
    for t in ("t", "u"):
        db.execute(f"SELECT embed_update('{t}', '[2, 3]', '[[1,0,1,0],"
                   "[0,1,0,1]]', 0.1)").fetchall()
    assert db.execute("SELECT * FROM t_state").fetchall() == \
        db.execute("SELECT * FROM u_state").fetchall()
    buffers = "SELECT id, embed_optimizer_state('{0}', id) FROM {0} ORDER BY id"
    assert db.execute(buffers.format("t")).fetchall() == \
        db.execute(buffers.format("u")).fetchall()
    # a ROLLBACK undoes it, as any write
    db.execute("BEGIN")
    db.execute("INSERT INTO t(t) VALUES ('reset-optimizer')")
    assert one(db, "SELECT count(*) FROM t_state") == 0
    db.execute("ROLLBACK")
    assert one(db, "SELECT count(*) FROM t_state") == 2


def test_reset_optimizer_of_states_in_the_rows(db):
    """adam keeps each row's state after its weight: reset-optimizer puts
    every state back to zeros, counts the rows it changed, keeps the
    weights, and a ROLLBACK undoes it."""
    trained(db, "adam")

    def states():
        return [one(db, "SELECT embed_optimizer_state('t', ?)", i)
                for i in range(6)]
    weights = db.execute("SELECT id, vector FROM t").fetchall()
    stepped = states()
    assert [i for i, s in enumerate(stepped) if s != bytes(32)] == [1, 2, 4]
    assert one(db, "SELECT count(*) FROM t_state") == 0
    db.execute("BEGIN")
    assert one(db, "SELECT embed_optimizer_reset('t')") == 3
    assert states() == [bytes(32)] * 6
    db.execute("ROLLBACK")
    assert states() == stepped
    db.execute("INSERT INTO t(t) VALUES ('reset-optimizer')")
    assert states() == [bytes(32)] * 6
    assert one(db, "SELECT value FROM t_config WHERE key = 'step'") == 0
    assert db.execute("SELECT id, vector FROM t").fetchall() == weights
    assert one(db, "SELECT embed_optimizer_reset('t')") == 0  # none left
    db.execute("INSERT INTO t(t) VALUES ('integrity-check')")


def test_reset_optimizer_on_a_damaged_table_fails_and_changes_nothing(
        file_db, db_path):
    trained(file_db)
    file_db.execute("DROP TABLE t_state")  # under the open table
    before = file_hash(db_path)
    with pytest.raises(sqlite3.OperationalError) as e:
        file_db.execute("INSERT INTO t(t) VALUES ('reset-optimizer')")
    assert str(e.value) == "embedding t: no such table: main.t_state"
    with pytest.raises(sqlite3.OperationalError) as e:
        file_db.execute("SELECT embed_optimizer_reset('t')")
    assert str(e.value) == \
        "embed_optimizer_reset: no such table: main.t_state; nothing was changed"
    with pytest.raises(sqlite3.DatabaseError) as e:
        file_db.execute("INSERT INTO t(t) VALUES ('integrity-check')")
    assert str(e.value) == "embedding t: shadow table t_state is missing"
    assert file_hash(db_path) == before
    file_db.close()
    with pytest.raises(sqlite3.DatabaseError) as e:  # opened again: refused
        connect(db_path).execute("INSERT INTO t(t) VALUES ('reset-optimizer')")
    assert str(e.value) == "embedding t: shadow table t_state is missing"


def test_bad_commands(file_db, db_path):
    trained(file_db)
    before = file_hash(db_path)
    for sql, params, message in [
        ("INSERT INTO t(t) VALUES ('optimize')", (),
         "embedding t: unknown command 'optimize'; the commands are: "
         "build-index, integrity-check, reset-optimizer, step"),
        ("INSERT INTO t(t) VALUES ('')", (),
         "embedding t: unknown command ''; the commands are: "
         "build-index, integrity-check, reset-optimizer, step"),
        ("INSERT INTO t(t) VALUES (?)", ("x" * 1000,),
         "embedding t: unknown command '" + "x" * 200 + "...'; the commands "
         "are: build-index, integrity-check, reset-optimizer, step"),
        ("INSERT INTO t(t) VALUES (CAST(? AS TEXT))", (b"\xffcheck",),
         "embedding t: unknown command '?check'; the commands are: "
         "build-index, integrity-check, reset-optimizer, step"),
        ("INSERT INTO t(t) VALUES (3)", (),
         "embedding t: a command must be TEXT, got INTEGER"),
        ("INSERT INTO t(t) VALUES (?)", (b"integrity-check",),
         "embedding t: a command must be TEXT, got BLOB"),
        ("INSERT INTO t(t, id) VALUES ('integrity-check', 1)", (),
         "embedding t: the integrity-check command takes no id"),
        ("INSERT INTO t(t, rowid) VALUES ('integrity-check', 1)", (),
         "embedding t: the integrity-check command takes no id"),
        ("INSERT INTO t(t, vector) VALUES ('reset-optimizer', '[1,2,3,4]')",
         (), "embedding t: the reset-optimizer command takes no vector"),
        ("INSERT INTO t(t, k) VALUES ('reset-optimizer', 3)", (),
         "embedding t: the reset-optimizer command takes no k"),
        ("UPDATE t SET t = 'integrity-check' WHERE id = 1", (),
         "embedding t: commands are run by INSERT INTO t(t) VALUES "
         "('command'), not by UPDATE"),
        ("INSERT INTO t(t) VALUES ('reset-optimizer'), ('nope')", (),
         "embedding t: unknown command 'nope'; the commands are: "
         "build-index, integrity-check, reset-optimizer, step"),
    ]:
        with pytest.raises(sqlite3.Error) as e:
            file_db.execute(sql, params)
        assert str(e.value) == message, sql
        assert file_hash(db_path) == before, sql  # reset-optimizer undone too
    assert one(file_db, "SELECT count(*) FROM t_state") == 3


def test_the_command_column(db):
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=2)")
    assert [r[1:3] + r[-1:] for r in db.execute("PRAGMA table_xinfo(tok)")] \
        == [("id", "INTEGER", 0), ("vector", "BLOB", 0),
            ("distance", "REAL", 1), ("k", "INTEGER", 1), ("lr", "REAL", 1),
            ("nprobe", "INTEGER", 1), ("tok", "", 1)]
    db.execute("INSERT INTO tok(id, vector) VALUES (1, '[1, 2]')")
    assert db.execute("SELECT tok, * FROM tok").fetchall() == \
        [(None, 1, f32(1, 2))]
    # it follows the table through a rename, and works in other schemas
    db.execute("ALTER TABLE tok RENAME TO words")
    db.execute("INSERT INTO words(words) VALUES ('integrity-check')")
    with pytest.raises(sqlite3.OperationalError):
        db.execute("INSERT INTO words(tok) VALUES ('integrity-check')")
    db.execute("ATTACH ':memory:' AS aux")
    db.execute("CREATE VIRTUAL TABLE aux.w2 USING embedding(dim=2, "
               "num_embeddings=2)")
    db.execute("INSERT INTO aux.w2(w2) VALUES ('integrity-check')")
    db.execute("UPDATE aux.w2_vectors SET vector = x'00' WHERE id = 1")
    with pytest.raises(sqlite3.DatabaseError) as e:
        db.execute("INSERT INTO aux.w2(w2) VALUES ('integrity-check')")
    assert str(e.value) == \
        "embedding w2: corrupt vector for id 1 (1 bytes, expected 8)"


@pytest.mark.parametrize("name", ["id", "vector", "distance", "k", "lr",
                                  "nprobe", "rowid", "OID", "_rowid_"])
def test_a_table_named_like_a_column_has_no_command_column(db, name):
    db.execute(f'CREATE VIRTUAL TABLE "{name}" USING embedding(dim=2, '
               'num_embeddings=2)')
    assert len(db.execute(f'PRAGMA table_xinfo("{name}")').fetchall()) == 6
    assert one(db, f'SELECT count(*) FROM "{name}"') == 2
    if HAS_XINTEGRITY:  # checked all the same
        db.execute(f'UPDATE "{name}_vectors" SET vector = x\'00\' WHERE id = 0')
        assert db.execute("PRAGMA integrity_check").fetchall() == [
            (f"embedding {name}: corrupt vector for id 0 (1 bytes, expected"
             " 8)",)]


@pytest.mark.skipif(not HAS_XINTEGRITY, reason="xIntegrity needs SQLite 3.44")
def test_pragma_integrity_check_lists_every_damaged_table(db):
    for t in ("a", "b", "c"):
        db.execute(f"CREATE VIRTUAL TABLE {t} USING embedding(dim=2, "
                   "num_embeddings=3)")
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    damage(db, [("UPDATE a_vectors SET vector = x'00' WHERE id = 2",),
                ("UPDATE c_vectors SET vector = x'0000c07f0000c07f'"
                 " WHERE id = 0",)])
    assert sorted(db.execute("PRAGMA integrity_check").fetchall()) == [
        ("embedding a: corrupt vector for id 2 (1 bytes, expected 8)",),
        ("embedding c: corrupt vector for id 0 (element 0 is not finite)",)]
    assert db.execute("PRAGMA integrity_check(b)").fetchall() == [("ok",)]
