"""Corrupted shadow tables: whatever a damaged or hostile file holds in
T_config, T_vectors or T_state, every read, write, search and training path
answers with a clear error that names the table, and nothing crashes.

    EMBED_EXT=$PWD/embed /usr/bin/python3 -m pytest -q tests/robust/test_corrupt.py

Each corruption (CASES: a field of a shadow table set to a wrong-length
BLOB, NULL, text, a number, NaN/Inf floats; a missing or extra row; an
altered config row; a missing shadow table) is applied with plain SQL (and
PRAGMA writable_schema where a NOT NULL must go) to a fresh database, then a
child process runs every operation (OPS) on its own copy of the file, so a
crash names its case and operation instead of killing the suite. Each
result must be:

  - an error whose message names the table (t, t_config, t_vectors or
    t_state), when the operation reads what was corrupted (the case's
    `fails` set);
  - that error, or success, otherwise (an UPDATE that overwrites a corrupt
    vector repairs it);
  - for the integrity check ('integrity-check'), that error whenever the
    table is damaged at all (every case but SOUND).

Impostors (IMPOSTORS): a shadow table replaced by a virtual table (of
embedding, FTS5 or R*Tree), a view, an index, a table of other columns, or
a table with the other kind of rowid. The table must refuse to open, for
every operation, with the exact error naming the shadow table and what it
is, and nothing may be read or written through the impostor.

`make test-asan` runs this file with the sanitizer build, so a read past a
short BLOB is caught even when it does not crash. The figures printed are
the number of fields (corruptions) tried and of impostor kinds refused.

The table trains with SGD momentum in layout 2 (LEGACY: made fresh, then
rewritten with plain SQL into the form earlier releases wrote), whose
states are T_state's rows; the cases marked ADAM use an Adam table instead,
whose states are stored after each weight in T_vectors (layout 3): a row of
the wrong length, or a state there that is not finite; those marked
MOMENTUM a momentum table of layout 4, whose buffers are stored after each
weight and whose T_state rows are empty marks of the rows with a buffer.
"""
import json
import re
import sqlite3
import subprocess
import sys

import pytest

from conftest import EXT, as_layout_2, f32, say


DIM = 4
TARGET = 3      # the row whose vector is corrupted
STATE_ID = 2    # a row with optimizer state (trained in setup)

READS = {"scan", "point", "in", "range", "join", "json", "lookup",
         "lookup_batch", "search", "search_txn", "search_filtered"}
TRAINS = {"train", "train_batch", "train_batch_stored", "train_bound"}
EVERYTHING = None  # the table cannot even be connected

# Operations, each on a fresh copy of the corrupted file. {id} is the row
# the case corrupts.
OPS = [
    ("scan", "SELECT id, vector FROM t"),
    ("point", "SELECT vector FROM t WHERE id = {id}"),
    ("in", "SELECT vector FROM t WHERE id IN ({id}, 0)"),
    ("range", "SELECT vector FROM t WHERE id BETWEEN {id} AND {id}"),
    ("join", "SELECT d.pos, e.vector FROM doc d JOIN t e ON e.id = d.token_id"),
    ("json", "SELECT embed_json(vector) FROM t WHERE id = {id}"),
    ("lookup", "SELECT embed_lookup('t', {id})"),
    ("lookup_batch", "SELECT embed_lookup('t', '[0, {id}]')"),
    ("search", "SELECT id FROM t WHERE vector MATCH '[1, 0, 0, 0]' AND k = 10"),
    ("search_txn", "BEGIN; SELECT id FROM t WHERE vector MATCH '[1, 0, 0, 0]'"
                   " AND k = 10; COMMIT"),
    ("search_filtered", "SELECT id FROM t WHERE vector MATCH '[0, 1, 0, 0]'"
                        " AND k = 3 AND id IN ({id}, 1)"),
    ("update_vector", "UPDATE t SET vector = '[1, 1, 1, 1]' WHERE id = {id}"),
    ("update_scaled", "UPDATE t SET vector = embed_scale(vector, 2)"
                      " WHERE id = {id}"),
    ("move", "UPDATE t SET id = 50 WHERE id = {id}"),
    ("insert", "INSERT INTO t(id) VALUES (60)"),
    ("insert_vector", "INSERT INTO t(id, vector) VALUES (61, '[1, 2, 3, 4]')"),
    ("insert_auto", "INSERT INTO t(vector) VALUES ('[1, 2, 3, 4]')"),
    ("replace", "INSERT OR REPLACE INTO t(id, vector)"
                " VALUES ({id}, '[4, 3, 2, 1]')"),
    ("delete", "DELETE FROM t WHERE id = {id}"),
    ("train", "SELECT embed_update('t', {id}, '[1, 1, 1, 1]', 0.1)"),
    ("train_batch", "SELECT embed_update('t', '[0, {id}, 0]',"
                    " '[[1,1,1,1],[1,1,1,1],[1,0,0,0]]', 0.1)"),
    # a batch after one that found its states stored: it reads and rewrites
    # each state in place through one handle (ids 1 and 3 have states)
    ("train_batch_stored", "SELECT embed_update('t', '[1, 3]',"
                           " '[[1,1,1,1],[1,1,1,1]]', 0.1); "
                           "SELECT embed_update('t', '[1, {id}]',"
                           " '[[1,1,1,1],[1,1,1,1]]', 0.1)"),
    ("train_bound", "SELECT embed_update(id, '[1, 1, 1, 1]', 0.1) FROM t"
                    " WHERE id = {id}"),
    ("reset", "SELECT embed_optimizer_reset('t')"),
    ("reset_command", "INSERT INTO t(t) VALUES ('reset-optimizer')"),
    ("integrity", "INSERT INTO t(t) VALUES ('integrity-check')"),
    ("rename", "ALTER TABLE t RENAME TO t2; SELECT count(*) FROM t2"),
    ("drop", "DROP TABLE t"),
]

# the corruptions that leave a sound table: the integrity check passes
SOUND = {"vectors row beyond the table's ids", "state row missing"}

# operations whose success is reported but never required (a table whose
# config is unreadable cannot be dropped: SQLite must connect it first)
INFORMATIONAL = {"drop", "rename"}


NAN_BLOB = f32(1, float("nan"), 0, 0)
INF_BLOB = f32(float("inf"), 0, 0, 0)
NAN_STATE = f32(*([0.0] * (DIM - 1) + [float("nan")]))
MOMENTUM = "sgd, momentum=0.9"  # DIM floats of buffer after each weight
LEGACY = "layout 2: " + MOMENTUM  # the buffers are T_state's rows
ADAM = "adam"           # 2*DIM floats of state after each weight


REOPEN = "-- reopen the file (a schema edit takes effect)"


def drop_not_null(table):
    """SQL that removes the NOT NULL of a shadow table's blob column (a file
    can hold anything; a hostile one would)."""
    return [
        "PRAGMA writable_schema = ON",
        f"UPDATE sqlite_schema SET sql = replace(sql, 'NOT NULL', '')"
        f" WHERE name = '{table}'",
        "PRAGMA writable_schema = OFF",
        REOPEN,
    ]


def vector_case(name, value, fails=READS | TRAINS | {"update_scaled"}):
    return (name, ["UPDATE t_vectors SET vector = ? WHERE id = %d" % TARGET],
            [value], TARGET, fails)


def state_case(name, value, fails=TRAINS):
    return (name, ["UPDATE t_state SET state = ? WHERE id = %d" % STATE_ID],
            [value], STATE_ID, fails)


def config_case(name, key, value, fails=EVERYTHING, also=None,
                optimizer=LEGACY):
    return (name, ["UPDATE t_config SET value = ? WHERE key = '%s'" % key],
            [value], TARGET, fails, also, optimizer)


def row_case(name, sql, value, target, fails, optimizer=ADAM):
    """An Adam (or layout-4 momentum) table's row, the weight then its
    state, rewritten by sql."""
    return (name, [sql % target], [] if value is None else [value], target,
            fails, None, optimizer)


# (name, SQL statements, parameters of the last one, target id, the
# operations that must fail[, a regex of further acceptable errors: errors
# about the operation's own input that the corruption makes wrong])
CASES = [
    # T_vectors.vector
    vector_case("vectors.vector short BLOB", b"\x00" * 4),
    vector_case("vectors.vector long BLOB", b"\x00" * 20),
    vector_case("vectors.vector odd BLOB", b"\x00" * 3),
    vector_case("vectors.vector empty BLOB", b""),
    vector_case("vectors.vector NaN", NAN_BLOB),
    vector_case("vectors.vector +Inf", INF_BLOB),
    vector_case("vectors.vector JSON text", "[1, 2, 3, 4]"),
    # The reads that go through one sqlite3_blob handle (point, IN and join
    # lookups, training steps) cannot see a value's type: a TEXT of exactly
    # 4*dim bytes whose bytes are finite floats reads as those floats there
    # (no out-of-bounds read; the shadow table's CHECK keeps such values
    # out). The integrity check sees it.
    vector_case("vectors.vector text of 4*dim bytes", "abcdefghijklmnop",
                READS - {"point", "in", "join", "json", "lookup_batch"}),
    vector_case("vectors.vector integer", 7),
    vector_case("vectors.vector 16-digit integer", 1234567890123456),
    vector_case("vectors.vector real", 2.5),
    ("vectors.vector NULL",
     drop_not_null("t_vectors")
     + ["UPDATE t_vectors SET vector = NULL WHERE id = %d" % TARGET], [],
     TARGET, READS | TRAINS | {"update_scaled"}),
    ("vectors row missing (state kept)",
     ["DELETE FROM t_vectors WHERE id = %d" % STATE_ID], [], STATE_ID,
     {"lookup", "lookup_batch", "train", "train_batch", "train_batch_stored"}),
    ("vectors row beyond the table's ids",
     ["INSERT INTO t_vectors(id, vector) VALUES (9223372036854775807,"
      " x'0000803f0000803f0000803f0000803f')"], [], TARGET, set()),
    # T_state.state
    state_case("state.state short BLOB", b"\x00" * 4),
    state_case("state.state long BLOB", b"\x00" * (4 * DIM + 4)),
    state_case("state.state empty BLOB", b""),
    state_case("state.state NaN", NAN_STATE),
    state_case("state.state text", "not a state"),
    # read in place through the state handle, such a TEXT reads as floats,
    # as a vector's does (see above)
    state_case("state.state text of 4*dim bytes", "x" * (4 * DIM),
               TRAINS - {"train_batch_stored"}),
    state_case("state.state integer", 5),
    ("state.state NULL",
     drop_not_null("t_state")
     + ["UPDATE t_state SET state = NULL WHERE id = %d" % STATE_ID], [],
     STATE_ID, TRAINS),
    ("state row for a missing id",
     ["INSERT INTO t_state(id, state) VALUES (99, x'00')"], [], TARGET, set()),
    ("state row missing", ["DELETE FROM t_state WHERE id = %d" % STATE_ID], [],
     STATE_ID, set()),
    # T_config
    config_case("config dim altered (3)", "dim", "3",
                READS | TRAINS | {"update_vector", "update_scaled",
                                  "insert_vector", "insert_auto", "replace"},
                also=r"^embed_update: gradients have more than"),
    config_case("config dim 0", "dim", "0"),
    config_case("config dim huge", "dim", "99999999"),
    config_case("config dim text", "dim", "four"),
    config_case("config dim NULL", "dim", None),
    config_case("config dim BLOB", "dim", b"\x04"),
    config_case("config seed text", "seed", "abc"),
    config_case("config seed NULL", "seed", None),
    config_case("config optimizer unknown", "optimizer", "rmsprop"),
    config_case("config betas malformed", "betas", "(0.9", optimizer=ADAM),
    config_case("config eps negative", "eps", "-1", optimizer=ADAM),
    config_case("config init unknown", "init", "xavier"),
    config_case("config metric unknown", "metric", "hamming"),
    config_case("config max_norm NaN", "max_norm", "nan"),
    config_case("config padding_idx out of range", "padding_idx", "-999999"),
    config_case("config step NULL", "step", None, TRAINS),
    config_case("config step text", "step", "many", TRAINS),
    config_case("config step negative", "step", -5, TRAINS),
    config_case("config step real", "step", 2.5, TRAINS),
    config_case("config step BLOB", "step", b"\x01\x02", TRAINS),
    config_case("config step huge", "step", 2 ** 63 - 1, TRAINS),
    ("config step row missing", ["DELETE FROM t_config WHERE key = 'step'"],
     [], TARGET, TRAINS),
    ("config dim row missing", ["DELETE FROM t_config WHERE key = 'dim'"], [],
     TARGET, EVERYTHING),
    ("config seed row missing", ["DELETE FROM t_config WHERE key = 'seed'"],
     [], TARGET, EVERYTHING),
    ("config unknown key", ["INSERT INTO t_config VALUES ('colour', 'red')"],
     [], TARGET, EVERYTHING),
    ("config duplicate key in another case",
     ["INSERT INTO t_config VALUES ('DIM', '4')"], [], TARGET, EVERYTHING),
    # whole shadow tables
    ("t_config missing", ["DROP TABLE t_config"], [], TARGET, EVERYTHING),
    ("t_vectors missing", ["DROP TABLE t_vectors"], [], TARGET,
     READS | TRAINS | {"update_vector", "update_scaled", "move", "insert",
                       "insert_vector", "insert_auto", "replace", "delete"}),
    ("t_state missing", ["DROP TABLE t_state"], [], TARGET,
     TRAINS | {"reset", "delete", "move"}),
    # an Adam table's rows: 4*DIM bytes of weight, then 8*DIM of state
    row_case("adam: row of the weight alone",
             "UPDATE t_vectors SET vector = substr(vector, 1, 16) WHERE id = %d",
             None, TARGET, READS | TRAINS | {"update_vector", "update_scaled",
                                             "reset", "reset_command"}),
    row_case("adam: row long",
             "UPDATE t_vectors SET vector = CAST(vector || ? AS BLOB) "
             "WHERE id = %d", b"\x00" * 4, TARGET,
             READS | TRAINS | {"update_vector", "update_scaled", "reset",
                               "reset_command"}),
    row_case("adam: weight NaN",
             "UPDATE t_vectors SET vector = CAST(? || substr(vector, 17) AS "
             "BLOB) WHERE id = %d", NAN_BLOB, TARGET,
             READS | TRAINS | {"update_scaled", "reset", "reset_command"}),
    row_case("adam: state NaN",
             "UPDATE t_vectors SET vector = CAST(substr(vector, 1, 16) || ? AS "
             "BLOB) WHERE id = %d",
             f32(*([0.0] * (2 * DIM - 1) + [float("nan")])), STATE_ID,
             TRAINS | {"reset", "reset_command"}),
    row_case("adam: state -Inf",
             "UPDATE t_vectors SET vector = CAST(substr(vector, 1, 16) || ? AS "
             "BLOB) WHERE id = %d", f32(*([-float("inf")] + [0.0] * 7)),
             STATE_ID, TRAINS | {"reset", "reset_command"}),
    row_case("adam: a t_state row",
             "INSERT INTO t_state(id, state) VALUES (%d, ?)", bytes(32),
             STATE_ID, set()),
    # a momentum table of layout 4: 4*DIM bytes of weight, then 4*DIM of
    # buffer; t_state marks (x'') rows 1, 2 and 3, stepped in setup
    row_case("momentum: row of the weight alone",
             "UPDATE t_vectors SET vector = substr(vector, 1, 16) WHERE id = %d",
             None, TARGET, READS | TRAINS | {"update_vector", "update_scaled",
                                             "reset", "reset_command"},
             MOMENTUM),
    row_case("momentum: buffer NaN",
             "UPDATE t_vectors SET vector = CAST(substr(vector, 1, 16) || ? AS "
             "BLOB) WHERE id = %d", NAN_STATE, STATE_ID,
             TRAINS | {"reset", "reset_command"}, MOMENTUM),
    row_case("momentum: a mark that is not empty",
             "UPDATE t_state SET state = ? WHERE id = %d", b"\x00" * 16,
             STATE_ID, set(), MOMENTUM),
    row_case("momentum: a mark missing",
             "DELETE FROM t_state WHERE id = %d", None, STATE_ID, set(),
             MOMENTUM),
    row_case("momentum: a mark for a missing id",
             "INSERT INTO t_state(id, state) VALUES (99 + %d, x'')", None,
             TARGET, set(), MOMENTUM),
    row_case("momentum: vectors row missing (mark kept)",
             "DELETE FROM t_vectors WHERE id = %d", None, STATE_ID,
             {"lookup", "lookup_batch", "train", "train_batch",
              "train_batch_stored", "reset", "reset_command"}, MOMENTUM),
    ("t_vectors replaced by a view",
     ["DROP TABLE t_vectors",
      "CREATE VIEW t_vectors AS SELECT %d AS id, x'00' AS vector" % TARGET],
     [], TARGET,
     READS | TRAINS | {"update_vector", "update_scaled", "move", "insert",
                       "insert_vector", "insert_auto", "replace", "delete"}),
]

NAMES_TABLE = re.compile(r"(\bt\b|\bt_(config|vectors|state)\b|'t')")


def make_database(path, optimizer=LEGACY):
    def connect():
        conn = sqlite3.connect(path, isolation_level=None)
        conn.enable_load_extension(True)
        conn.load_extension(EXT)
        return conn
    conn = connect()
    conn.execute(f"CREATE VIRTUAL TABLE t USING embedding(dim={DIM}, "
                 f"num_embeddings=6, seed=3, "
                 f"optimizer={optimizer.replace('layout 2: ', '')})")
    if optimizer == LEGACY:  # the fresh table's rows cut to the weight
        conn.close()
        as_layout_2(path, "t", DIM)
        conn = connect()
    conn.executescript("""
        CREATE TABLE doc(pos INTEGER PRIMARY KEY, token_id INTEGER);
        INSERT INTO doc(token_id) VALUES (3), (1), (2);
        SELECT embed_update('t', '[1, 2, 3]', '[[1,0,0,0],[0,1,0,0],[0,0,1,0]]',
                            0.1);
    """)
    conn.close()


def corrupt(path, statements, params):
    conn = sqlite3.connect(path, isolation_level=None)  # no extension
    # the shadow tables CHECK that blobs are BLOBs: a damaged file need not
    conn.execute("PRAGMA ignore_check_constraints = ON")
    for i, sql in enumerate(statements):
        if sql == REOPEN:
            conn.close()
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA ignore_check_constraints = ON")
            continue
        conn.execute(sql, params if i == len(statements) - 1 else ())
    conn.close()


# The child: runs every operation on its own copy of the file and prints one
# JSON line per operation before (so that a crash names it) and after. It
# imports nothing heavy, so it starts fast.
CHILD = r"""
import json, os, shutil, sqlite3, sys
ext, path, target, workdir, ops = json.loads(sys.argv[1])
for name, sql in ops:
    copy = os.path.join(workdir, "op.db")
    shutil.copyfile(path, copy)
    print(json.dumps({"op": name, "started": True}), flush=True)
    conn = sqlite3.connect(copy, isolation_level=None)
    conn.enable_load_extension(True)
    conn.load_extension(ext)
    result = {"op": name}
    try:
        for stmt in sql.format(id=target).split("; "):
            conn.execute(stmt).fetchall()
        result["ok"] = True
    except sqlite3.Error as e:
        result["error"] = str(e)
        result["code"] = getattr(e, "sqlite_errorname", "")
    conn.close()
    print(json.dumps(result), flush=True)
"""


@pytest.fixture(scope="module")
def report(request):
    found = []
    yield found
    say(request, f"\ncorrupt: {len(CASES)} fields tried x {len(OPS)} "
                 f"operations, {len(found)} problems")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_corrupted(case, tmp_path, report):
    name, statements, params, target, fails = case[:5]
    also = re.compile(case[5]) if len(case) > 5 and case[5] else None
    optimizer = case[6] if len(case) > 6 else LEGACY
    path = str(tmp_path / "c.db")
    make_database(path, optimizer)
    corrupt(path, statements, params)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD,
         json.dumps([EXT, path, target, str(tmp_path), OPS])],
        capture_output=True, text=True, timeout=120)
    results, started = {}, None
    for line in proc.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("started"):
            started = msg["op"]
        else:
            results[msg["op"]] = msg
    problems = []
    if proc.returncode != 0:
        problems.append(f"CRASH (exit {proc.returncode}) in operation "
                        f"{started}: {proc.stderr[-3000:]}")
    for op, _ in OPS:
        r = results.get(op)
        if r is None or op in INFORMATIONAL:
            continue
        must_fail = fails is EVERYTHING or op in fails or (
            op == "integrity" and name not in SOUND)
        if "error" in r:
            if not NAMES_TABLE.search(r["error"]) and not (
                    also and also.search(r["error"])):
                problems.append(f"{op}: the error does not name the table: "
                                f"{r['error']!r}")
        elif must_fail:
            problems.append(f"{op}: succeeded on a corrupt table")
        if op == "integrity" and name in SOUND and "error" in r:
            problems.append(f"integrity: failed on a sound table: {r['error']}")
    report.extend(f"{name}: {p}" for p in problems)
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)



# ------------------------------------------------------------ impostors
#
# A shadow table replaced by something else of the same name: the table
# must refuse to open, with the exact error naming the shadow table and
# what is there instead, for every operation, and nothing may be read or
# written through the impostor. (Every shadow statement is prepared with
# SQLITE_PREPARE_NO_VTAB too; the check at connect covers views and
# tables of other columns, which that flag does not.)

def _shadow(table, what):
    return f"embedding t: shadow table {table} {what}"


IMPOSTORS = [
    ("t_vectors an embedding table",
     ["DROP TABLE t_vectors",
      "CREATE VIRTUAL TABLE t_vectors USING embedding(dim=4, num_embeddings=2,"
      " seed=1)"],
     _shadow("t_vectors", "is a virtual table, not an ordinary table")),
    ("t_config an FTS5 table",
     ["DROP TABLE t_config",
      "CREATE VIRTUAL TABLE t_config USING fts5(key, value)",
      "INSERT INTO t_config VALUES ('dim', '4'), ('seed', '1')"],
     _shadow("t_config", "is a virtual table, not an ordinary table")),
    ("t_state an R*Tree table",
     ["DROP TABLE t_state",
      "CREATE VIRTUAL TABLE t_state USING rtree(id, x0, x1)"],
     _shadow("t_state", "is a virtual table, not an ordinary table")),
    ("t_vectors a view",
     ["DROP TABLE t_vectors",
      "CREATE VIEW t_vectors AS SELECT 3 AS id, x'00' AS vector"],
     _shadow("t_vectors", "is a view, not a table")),
    ("t_config a view",
     ["CREATE TABLE saved AS SELECT * FROM t_config", "DROP TABLE t_config",
      "CREATE VIEW t_config AS SELECT * FROM saved"],
     _shadow("t_config", "is a view, not a table")),
    ("t_state an index",
     ["DROP TABLE t_state", "CREATE INDEX t_state ON doc(token_id)"],
     _shadow("t_state", "is an index, not a table")),
    ("t_vectors with another column name",
     ["ALTER TABLE t_vectors RENAME COLUMN vector TO v"],
     _shadow("t_vectors", "has the columns (id INTEGER PRIMARY KEY, v BLOB),"
             " expected (id INTEGER PRIMARY KEY, vector BLOB)")),
    ("t_vectors with an extra column",
     ["ALTER TABLE t_vectors ADD COLUMN extra"],
     _shadow("t_vectors", "has the columns (id INTEGER PRIMARY KEY, vector"
             " BLOB, extra), expected (id INTEGER PRIMARY KEY, vector BLOB)")),
    ("t_vectors whose id is not the rowid",
     ["DROP TABLE t_vectors",
      "CREATE TABLE t_vectors(id INTEGER, vector BLOB)",
      "INSERT INTO t_vectors VALUES (3, x'0000803f0000803f0000803f0000803f')"],
     _shadow("t_vectors", "has the columns (id INTEGER, vector BLOB),"
             " expected (id INTEGER PRIMARY KEY, vector BLOB)")),
    ("t_state WITHOUT ROWID",
     ["DROP TABLE t_state",
      "CREATE TABLE t_state(id INTEGER PRIMARY KEY, state BLOB) WITHOUT ROWID"],
     _shadow("t_state", "is a WITHOUT ROWID table, expected a rowid table")),
    ("t_config a rowid table",
     ["CREATE TABLE saved AS SELECT * FROM t_config", "DROP TABLE t_config",
      "CREATE TABLE t_config(key TEXT PRIMARY KEY, value)",
      "INSERT INTO t_config SELECT * FROM saved"],
     _shadow("t_config", "is a rowid table, expected a WITHOUT ROWID table")),
]

# operations that would read or write through an impostor (the table itself
# and the functions on it)
IMPOSTOR_OPS = [op for op in OPS if op[0] not in INFORMATIONAL] + [
    ("count", "SELECT count(*) FROM t"),
    ("command", "INSERT INTO t(t) VALUES ('integrity-check')"),
]


def _impostor_contents(conn):
    """Every row of every object of the file but t, as text."""
    out = []
    for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type IN"
                                " ('table', 'view') AND name NOT LIKE 't' AND"
                                " name NOT LIKE 't\\_%\\_%' ESCAPE '\\'"
                                " ORDER BY name").fetchall():
        try:
            out.append((name, conn.execute(
                f'SELECT * FROM "{name}" ORDER BY 1').fetchall()))
        except sqlite3.Error as e:
            out.append((name, str(e)))
    return out


@pytest.fixture(scope="module")
def impostors(request):
    refused = []
    yield refused
    say(request, f"\ncorrupt: {len(refused)} of {len(IMPOSTORS)} impostor "
                 f"kinds refused with their exact error")


@pytest.mark.parametrize("case", IMPOSTORS, ids=[c[0] for c in IMPOSTORS])
def test_impostor_shadow_table_refused(case, tmp_path, impostors):
    name, statements, message = case
    path = str(tmp_path / "i.db")
    make_database(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.enable_load_extension(True)
    conn.load_extension(EXT)  # an embedding impostor needs the module
    for sql in statements:
        conn.execute(sql)
    conn.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.enable_load_extension(True)
    conn.load_extension(EXT)
    before = _impostor_contents(conn)
    for op, sql in IMPOSTOR_OPS:
        with pytest.raises(sqlite3.DatabaseError) as e:
            for stmt in sql.format(id=TARGET).split("; "):
                conn.execute(stmt).fetchall()
        assert str(e.value) == message, op
        assert e.value.sqlite_errorname == "SQLITE_CORRUPT_VTAB", op
        if not conn.in_transaction:
            assert _impostor_contents(conn) == before, op
        else:
            conn.execute("ROLLBACK")
    conn.close()
    impostors.append(name)
