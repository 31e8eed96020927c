"""The API surface: registered functions and their flags (README: Functions,
Function flags), the module, trusted_schema=OFF, and defensive mode (README:
Storage; the shadow tables are protected from direct writes).

Python 3.11's sqlite3 module cannot call sqlite3_db_config, so the defensive
mode test drives the same libsqlite3 through ctypes (its own connection,
opened, configured and loaded with the extension there)."""
import ctypes
import ctypes.util

import pytest

from conftest import EXT, connect

DETERMINISTIC = 0x000000800
DIRECTONLY = 0x000080000
INNOCUOUS = 0x000200000
FLAG_BITS = DETERMINISTIC | DIRECTONLY | INNOCUOUS
PURE = DETERMINISTIC | INNOCUOUS

# The README's pure functions, aggregates and lookup/training functions: name,
# number of arguments, kind ('s' scalar, 'a' aggregate), the flag bits among
# FLAG_BITS.
EXPECTED = {
    ("embed_version", 0, "s", PURE),
    ("embed_vector", 1, "s", PURE),
    ("embed_json", 1, "s", PURE),
    ("embed_dim", 1, "s", PURE),
    ("embed_norm", 1, "s", PURE),
    ("embed_dot", 2, "s", PURE),
    ("embed_cosine", 2, "s", PURE),
    ("embed_l2", 2, "s", PURE),
    ("embed_add", 2, "s", PURE),
    ("embed_sub", 2, "s", PURE),
    ("embed_scale", 2, "s", PURE),
    ("embed_normalize", 1, "s", PURE),
    ("embed_sum", 1, "a", PURE),
    ("embed_sum", 2, "a", PURE),
    ("embed_mean", 1, "a", PURE),
    ("embed_max", 1, "a", PURE),
    ("embed_lookup", 1, "s", 0),
    ("embed_lookup", 2, "s", 0),
    ("embed_update", 3, "s", DIRECTONLY),
    ("embed_update", 4, "s", DIRECTONLY),
    # the helpers for training in SQL ...
    ("embed_sigmoid", 1, "s", PURE),
    ("embed_log_sigmoid", 1, "s", PURE),
    ("embed_stack", 1, "a", PURE),
    # ... and the optimizer state of ext/table/train_state.c: read (a
    # table read, as embed_lookup) and reset (it writes)
    ("embed_optimizer_state", 1, "s", 0),
    ("embed_optimizer_state", 2, "s", 0),
    ("embed_optimizer_reset", 0, "s", DIRECTONLY),
    ("embed_optimizer_reset", 1, "s", DIRECTONLY),
}
WRITERS = {"embed_update", "embed_optimizer_reset"}
READERS = {"embed_lookup", "embed_optimizer_state"}  # of a table
# The file functions (README: Files) are outside this suite; embed_save is
# allowed to exist.
OUTSIDE_THIS_SUITE = {"embed_save"}


def registered(conn):
    got = conn.execute("SELECT name, narg, type, flags FROM pragma_function_list "
                       "WHERE name LIKE 'embed%'").fetchall()
    return {(n, a, t, f & FLAG_BITS) for n, a, t, f in got if n not in OUTSIDE_THIS_SUITE}


def test_function_list_is_exactly_the_documented_one(db):
    got = registered(db)
    assert got - EXPECTED == set(), "unexpected or misflagged functions"
    assert EXPECTED - got == set(), "missing or misflagged functions"


def test_pure_functions_are_deterministic_and_innocuous(db):
    for name, narg, kind, flags in registered(db):
        if name in READERS or name in WRITERS:
            continue
        assert flags & DETERMINISTIC, (name, narg)
        assert flags & INNOCUOUS, (name, narg)
        assert not flags & DIRECTONLY, (name, narg)


def test_training_function_flags(db):
    for name, narg, kind, flags in registered(db):
        if name in WRITERS:
            assert flags & DIRECTONLY and not flags & (DETERMINISTIC | INNOCUOUS), narg
        if name in READERS:
            assert not flags & (DETERMINISTIC | INNOCUOUS | DIRECTONLY), (name, narg)


def test_module_is_registered(db):
    assert ("embedding",) in db.execute("SELECT name FROM pragma_module_list").fetchall()


def test_not_registered_without_the_extension():
    import sqlite3
    conn = sqlite3.connect(":memory:")
    assert conn.execute("SELECT count(*) FROM pragma_function_list "
                        "WHERE name LIKE 'embed%'").fetchone()[0] == 0
    conn.close()


def test_loading_twice_is_harmless(db):
    db.enable_load_extension(True)
    db.load_extension(EXT)
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=2, num_embeddings=2)")
    assert db.execute("SELECT count(*) FROM tok").fetchone()[0] == 2


# ----------------------------------------------------------- trusted_schema


def test_table_works_with_trusted_schema_off(db_path):
    conn = connect(db_path)
    conn.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=2, num_embeddings=4, seed=3)")
    conn.execute("CREATE TABLE log(id)")
    conn.execute("CREATE TRIGGER tr AFTER INSERT ON log BEGIN "
                 "INSERT INTO tok(id, vector) VALUES (new.id, '[1, 1]'); END")
    conn.execute("CREATE VIEW pure AS SELECT id, embed_norm(vector) AS n, "
                 "embed_json(embed_normalize(vector)) AS u FROM tok")
    conn.execute("CREATE VIEW looked AS SELECT embed_lookup('tok', 1) AS v")
    conn.close()
    conn = connect(db_path)
    conn.execute("PRAGMA trusted_schema = OFF")
    assert conn.execute("PRAGMA trusted_schema").fetchone()[0] == 0
    # direct use
    conn.execute("INSERT INTO tok(id, vector) VALUES (10, '[3, 4]')")
    conn.execute("UPDATE tok SET vector = '[6, 8]' WHERE id = 10")
    assert conn.execute("SELECT embed_update('tok', 10, '[1, 1]', 1)").fetchone()[0] == 1
    assert conn.execute("SELECT id FROM tok WHERE vector MATCH '[5, 7]' AND k = 1").fetchone()[0] == 10
    # the table is INNOCUOUS: usable from a trigger and a view of the schema,
    # and so are the pure functions
    conn.execute("INSERT INTO log VALUES (20)")
    assert conn.execute("SELECT id FROM tok WHERE id = 20").fetchone()[0] == 20
    got = {i: (n, u) for i, n, u in conn.execute("SELECT * FROM pure")}
    assert got[10][0] == pytest.approx(74 ** 0.5, rel=1e-6)  # [6, 8] - [1, 1]
    assert got[20] == (pytest.approx(2 ** 0.5, rel=1e-6), "[0.70710677,0.70710677]")
    # embed_lookup is not INNOCUOUS: refused in a view when the schema is untrusted
    with pytest.raises(Exception) as info:
        conn.execute("SELECT * FROM looked").fetchall()
    assert str(info.value) == "unsafe use of embed_lookup()"
    conn.execute("PRAGMA trusted_schema = ON")
    assert len(conn.execute("SELECT * FROM looked").fetchone()[0]) == 8
    conn.close()


# ---------------------------------------------------------------- defensive

SQLITE_DBCONFIG_DEFENSIVE = 1010


class CApi:
    """Just enough of the C API, through ctypes, to run SQL on a connection
    with SQLITE_DBCONFIG_DEFENSIVE set."""

    def __init__(self, path):
        name = "libsqlite3.so.0"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError:
            found = ctypes.util.find_library("sqlite3")
            if not found:
                pytest.skip("libsqlite3 cannot be loaded through ctypes")
            self.lib = ctypes.CDLL(found)
        lib = self.lib
        lib.sqlite3_open_v2.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                                        ctypes.c_int, ctypes.c_char_p]
        lib.sqlite3_errmsg.argtypes = [ctypes.c_void_p]
        lib.sqlite3_errmsg.restype = ctypes.c_char_p
        lib.sqlite3_enable_load_extension.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.sqlite3_load_extension.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                               ctypes.POINTER(ctypes.c_char_p)]
        lib.sqlite3_exec.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p,
                                     ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p)]
        lib.sqlite3_free.argtypes = [ctypes.c_void_p]
        lib.sqlite3_close.argtypes = [ctypes.c_void_p]
        self.db = ctypes.c_void_p()
        flags = 0x2 | 0x4  # READWRITE | CREATE
        assert lib.sqlite3_open_v2(path.encode(), ctypes.byref(self.db), flags, None) == 0
        assert lib.sqlite3_enable_load_extension(self.db, 1) == 0
        err = ctypes.c_char_p()
        rc = lib.sqlite3_load_extension(self.db, EXT.encode(), None, ctypes.byref(err))
        assert rc == 0, err.value

    def dbconfig(self, op, value):
        out = ctypes.c_int(-1)
        rc = self.lib.sqlite3_db_config(self.db, ctypes.c_int(op), ctypes.c_int(value),
                                        ctypes.byref(out))
        assert rc == 0
        return out.value

    def exec(self, sql):
        """Run sql; None on success, else the error message."""
        err = ctypes.c_char_p()
        rc = self.lib.sqlite3_exec(self.db, sql.encode(), None, None, ctypes.byref(err))
        msg = err.value.decode() if err.value else None
        if err.value:
            self.lib.sqlite3_free(ctypes.cast(err, ctypes.c_void_p))
        return None if rc == 0 else (msg or f"rc={rc}")

    def close(self):
        self.lib.sqlite3_close(self.db)


def test_defensive_mode_protects_shadow_tables(db_path):
    setup = connect(db_path)
    setup.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=2, num_embeddings=3, seed=1)")
    shadows = [r[0] for r in setup.execute(
        "SELECT name FROM sqlite_schema WHERE name LIKE 'tok\\_%' ESCAPE '\\'")]
    before = setup.execute("SELECT id, vector FROM tok").fetchall()
    setup.close()
    assert shadows

    c = CApi(db_path)
    try:
        assert c.dbconfig(SQLITE_DBCONFIG_DEFENSIVE, 1) == 1
        for t in shadows:
            q = '"' + t.replace('"', '""') + '"'
            assert c.exec(f"DELETE FROM {q}") == f"table {t} may not be modified"
            assert c.exec(f"UPDATE {q} SET rowid = rowid") == f"table {t} may not be modified"
            assert c.exec(f"DROP TABLE {q}") == f"table {t} may not be dropped"
            assert c.exec(f"INSERT INTO {q} SELECT * FROM {q} WHERE 0") == \
                f"table {t} may not be modified"
        # the table itself still works in defensive mode
        assert c.exec("INSERT INTO tok(id, vector) VALUES (5, '[1, 2]')") is None
        assert c.exec("UPDATE tok SET vector = '[3, 4]' WHERE id = 5") is None
        assert c.exec("SELECT embed_update('tok', 5, '[1, 1]', 1)") is None
        assert c.exec("DELETE FROM tok WHERE id = 5") is None
        assert c.exec("CREATE VIRTUAL TABLE t2 USING embedding(dim=2, num_embeddings=2)") is None
        assert c.exec("ALTER TABLE t2 RENAME TO t3") is None
        assert c.exec("DROP TABLE t3") is None
    finally:
        c.close()

    check = connect(db_path)
    assert check.execute("SELECT id, vector FROM tok").fetchall() == before
    assert check.execute("SELECT count(*) FROM sqlite_schema WHERE name LIKE 't3%' "
                         "OR name LIKE 't2%'").fetchone()[0] == 0
    check.close()


def test_shadow_tables_are_writable_without_defensive_mode(db_path):
    # the control for the test above: the same writes succeed when the
    # connection is not defensive, so the refusals come from defensive mode
    setup = connect(db_path)
    setup.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=2, num_embeddings=3, seed=1)")
    setup.close()
    c = CApi(db_path)
    try:
        assert c.dbconfig(SQLITE_DBCONFIG_DEFENSIVE, 0) == 0
        assert c.exec("DELETE FROM tok_vectors WHERE id = 2") is None
    finally:
        c.close()
    check = connect(db_path)
    assert [r[0] for r in check.execute("SELECT id FROM tok")] == [0, 1]
    check.close()


def test_lookup_is_evaluated_each_time_it_is_called(db):
    # embed_lookup is not DETERMINISTIC: SQLite must not reuse one call's
    # result for another, or a read after a step would see the old row
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=2, num_embeddings=3, seed=1)")
    before, changed, after = db.execute(
        "SELECT embed_lookup('tok', 1), embed_update('tok', 1, '[1, 1]', 1), "
        "embed_lookup('tok', 1)").fetchone()
    assert changed == 1
    assert before != after
    assert after == db.execute("SELECT vector FROM tok WHERE id = 1").fetchone()[0]
    got = db.execute("SELECT embed_lookup('tok', 1) FROM (SELECT 1 UNION ALL SELECT 2) "
                     "WHERE embed_update('tok', 1, '[1, 1]', 1)").fetchall()
    assert got[0][0] != got[1][0]
