"""Every error message is valid UTF-8 and short, whatever the arguments
(README: Errors): a value echoed in a message is shown as `a BLOB of N
bytes`, or as its text cut after 200 bytes ("...") with NUL and bytes that
are not valid UTF-8 shown as '?'; never as raw bytes.

Python's sqlite3 decodes every message as UTF-8: a message with raw bytes
raises UnicodeDecodeError instead of sqlite3.Error, which is the failure
this suite looks for. Each function, table-valued function, constraint,
write and command takes, in each argument in turn, each value of BAD (a
BLOB, invalid UTF-8 text, 100,000 characters of text, and the same as
invalid UTF-8 and as a BLOB); stored values come through the config rows
and CREATE arguments. The figure printed is the number of messages checked.
Exact messages of the cases that used to echo raw bytes are asserted too."""
import os
import sqlite3

import pytest

from conftest import connect, say

LONG = 100_000
# (name, SQL for the argument, the value bound to it)
BAD = [
    ("blob", "?", b"\xb7\xa3c?]"),
    ("invalid-utf8", "CAST(? AS TEXT)", b"\xb7\xa3c?]\xff\xfe\xc3"),
    ("long-text", "?", "x" * LONG),
    ("long-invalid-utf8", "CAST(? AS TEXT)", b"\xe9" * LONG),
    ("long-blob", "?", b"\xff" * LONG),
    ("nul-text", "CAST(? AS TEXT)", b"a\x00b\x00\xff"),
]
MAX_MESSAGE = 600  # characters: 200 of an echoed value, the rest the text

# (SQL with {0}, {1}, ... for the arguments, the valid arguments): every
# function, table-valued function, constraint, write and command.
CALLS = [
    ("SELECT embed_vector({0})", ["'[1, 2]'"]),
    ("SELECT embed_json({0})", ["'[1, 2]'"]),
    ("SELECT embed_dim({0})", ["'[1, 2]'"]),
    ("SELECT embed_norm({0})", ["'[1, 2]'"]),
    ("SELECT embed_normalize({0})", ["'[1, 2]'"]),
    ("SELECT embed_dot({0}, {1})", ["'[1, 2]'", "'[3, 4]'"]),
    ("SELECT embed_cosine({0}, {1})", ["'[1, 2]'", "'[3, 4]'"]),
    ("SELECT embed_l2({0}, {1})", ["'[1, 2]'", "'[3, 4]'"]),
    ("SELECT embed_add({0}, {1})", ["'[1, 2]'", "'[3, 4]'"]),
    ("SELECT embed_sub({0}, {1})", ["'[1, 2]'", "'[3, 4]'"]),
    ("SELECT embed_scale({0}, {1})", ["'[1, 2]'", "2"]),
    ("SELECT embed_sigmoid({0})", ["1"]),
    ("SELECT embed_log_sigmoid({0})", ["1"]),
    ("SELECT embed_sum(v) FROM (SELECT {0} AS v)", ["'[1, 2]'"]),
    ("SELECT embed_sum(v, w) FROM (SELECT {0} AS v, {1} AS w)",
     ["'[1, 2]'", "2"]),
    ("SELECT embed_mean(v) FROM (SELECT {0} AS v)", ["'[1, 2]'"]),
    ("SELECT embed_max(v) FROM (SELECT {0} AS v)", ["'[1, 2]'"]),
    ("SELECT embed_stack(v) FROM (SELECT {0} AS v)", ["'[1, 2]'"]),
    ("SELECT embed_lookup({0})", ["1"]),
    ("SELECT embed_lookup({0}, {1})", ["'t'", "'[1, 2]'"]),
    ("SELECT embed_update({0}, {1}, {2})", ["1", "'[1, 1]'", "0.1"]),
    ("SELECT embed_update({0}, {1}, {2}, {3})",
     ["'t'", "'[1, 2]'", "'[[1, 1], [1, 0]]'", "0.1"]),
    ("SELECT embed_update(id, {0}, {1}) FROM t WHERE id = 1",
     ["'[1, 1]'", "0.1"]),
    ("SELECT embed_lookup(id) FROM t WHERE id = {0}", ["1"]),
    ("SELECT embed_optimizer_reset({0})", ["'t'"]),
    ("SELECT * FROM embed_file({0})", ["'vec.txt'"]),
    ("SELECT * FROM embed_file({0}, {1})", ["'vec.txt'", "'glove'"]),
    ("SELECT token FROM embed_file WHERE path = {0} AND format = {1}",
     ["'vec.txt'", "'glove'"]),
    ("SELECT embed_save({0}, {1}, {2}, {3})",
     ["'out.vec'", "'word2vec'", "'tok'", "'[1, 2]'"]),
    ("SELECT embed_save(p, f, t, v) FROM (SELECT 'out2.vec' AS p, 'glove' AS f,"
     " 'a' AS t, '[1, 2]' AS v UNION ALL SELECT {0}, {1}, {2}, {3})",
     ["'out2.vec'", "'glove'", "'b'", "'[1, 2]'"]),
    ("SELECT id FROM t WHERE id = {0}", ["1"]),
    ("SELECT id FROM t WHERE id IN ({0}, 2)", ["1"]),
    ("SELECT id FROM t WHERE id > {0} AND id <= {1}", ["0", "2"]),
    ("SELECT id FROM t WHERE vector MATCH {0} AND k = {1}", ["'[1, 0]'", "2"]),
    ("SELECT id FROM t WHERE vector MATCH {0} AND k = {1} AND id IN ({2})",
     ["'[1, 0]'", "2", "1"]),
    ("SELECT id FROM t WHERE vector MATCH {0} ORDER BY distance LIMIT {1}",
     ["'[1, 0]'", "2"]),
    ("SELECT id FROM t WHERE vector MATCH {0} ORDER BY distance LIMIT 2"
     " OFFSET {1}", ["'[1, 0]'", "1"]),
    ("SELECT id FROM t WHERE vector MATCH {0} AND k = 2 AND id BETWEEN {1}"
     " AND {2}", ["'[1, 0]'", "0", "5"]),
    ("INSERT INTO t(id, vector) VALUES ({0}, {1})", ["10", "'[1, 2]'"]),
    ("INSERT INTO t(vector) VALUES ({0})", ["'[1, 2]'"]),
    ("INSERT INTO t(rowid, id) VALUES ({0}, {1})", ["11", "11"]),
    ("INSERT INTO t(id, distance) VALUES (12, {0})", ["NULL"]),
    ("INSERT INTO t(id, k) VALUES (13, {0})", ["NULL"]),
    ("UPDATE t SET vector = {0} WHERE id = 1", ["'[1, 2]'"]),
    ("UPDATE t SET id = {0} WHERE id = 2", ["20"]),
    ("UPDATE t SET k = {0} WHERE id = 1", ["NULL"]),
    ("INSERT INTO t(t) VALUES ({0})", ["'integrity-check'"]),
    ("INSERT INTO t(t, id) VALUES ('integrity-check', {0})", ["NULL"]),
    ("INSERT INTO t(t, vector) VALUES ('reset-optimizer', {0})", ["NULL"]),
    ("UPDATE t SET t = {0} WHERE id = 1", ["NULL"]),
]

CHECKED = []


def check_message(conn, sql, params, what):
    """Run sql; an error's message must decode, be short and not hold the
    long argument. Returns the message, or None on success."""
    try:
        conn.execute(sql, params).fetchall()
    except UnicodeDecodeError as e:
        pytest.fail(f"{what}: the message is not valid UTF-8: {e}")
    except sqlite3.Error as e:
        message = str(e)
        assert len(message) <= MAX_MESSAGE, f"{what}: {len(message)} chars"
        assert "x" * 300 not in message and "\ufffd" not in message, what
        CHECKED.append(message)
        return message
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    return None


@pytest.fixture(scope="module")
def report(request):
    yield
    say(request, f"\nmessages: {len(CHECKED)} error messages checked, "
                 f"each valid UTF-8 and at most {MAX_MESSAGE} characters")


@pytest.fixture
def tdb(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # embed_save writes, embed_file reads here
    (tmp_path / "vec.txt").write_text("a 1 2\nb 3 4\n")
    conn = connect(str(tmp_path / "m.db"))
    conn.execute("CREATE VIRTUAL TABLE t USING embedding(dim=2, "
                 "num_embeddings=3, seed=1, optimizer=adam)")
    yield conn
    conn.close()


@pytest.mark.parametrize("call", CALLS, ids=[c[0][:60] for c in CALLS])
def test_every_argument_with_bad_values(tdb, call, report):
    sql, args = call
    for i in range(len(args)):
        for name, expr, value in BAD:
            filled = list(args)
            filled[i] = expr
            check_message(tdb, sql.format(*filled), (value,),
                          f"{sql} argument {i} {name}")


CONFIG_KEYS = ["dim", "seed", "metric", "optimizer", "init", "max_norm",
               "padding_idx", "eps", "betas", "search_cache", "step"]


@pytest.mark.parametrize("key", CONFIG_KEYS + ["(unknown key)"])
def test_stored_values(tmp_path, key, report):
    for name, expr, value in BAD:
        path = str(tmp_path / f"{name}.db")
        conn = connect(path)
        conn.execute("CREATE VIRTUAL TABLE t USING embedding(dim=2, "
                     "num_embeddings=3, seed=1, optimizer=adam)")
        conn.close()
        raw = sqlite3.connect(path, isolation_level=None)
        if key == "(unknown key)":
            raw.execute(f"INSERT INTO t_config VALUES ({expr}, '1')", (value,))
        else:
            raw.execute(f"UPDATE t_config SET value = {expr} WHERE key = ?",
                        (value, key))
        raw.close()
        conn = connect(path)
        for sql in ["SELECT count(*) FROM t", "SELECT embed_lookup('t', 1)",
                    "SELECT embed_update('t', 1, '[1, 1]', 0.1)",
                    "INSERT INTO t(t) VALUES ('integrity-check')"]:
            check_message(conn, sql, (), f"{key} = {name}: {sql}")
        conn.close()


@pytest.mark.parametrize("option", ["dim", "metric", "optimizer", "init",
                                    "max_norm", "betas", "nope"])
def test_long_create_arguments(db, option, report):
    # multi-byte characters at each offset: a message cut at its buffer's
    # end must not end inside one
    for text in ["x" * 5000, "\u00e9" * 3000, "a" + "\u00e9" * 3000,
                 "\u20ac" * 2001, "a" + "\u20ac" * 2001, "ab" + "\u20ac" * 2001]:
        message = check_message(
            db, f"CREATE VIRTUAL TABLE c USING embedding(dim=2, {option}="
                f"'{text}')" if option != "dim" else
            f"CREATE VIRTUAL TABLE c USING embedding(dim='{text}')", (),
            option)
        assert message is not None and message.startswith("embedding c: ")


# The exact messages of the places that used to echo raw bytes.
EXACT = [
    ("SELECT id FROM t WHERE vector MATCH '[1, 0]' AND k = ?",
     (b"\xb7\xa3c?]",),
     "embedding t: k must be an integer in [1, 100000], got a BLOB of 5 bytes"),
    ("SELECT id FROM t WHERE vector MATCH '[1, 0]' AND k = CAST(? AS TEXT)",
     (b"\xb7\xa3c?]",),
     "embedding t: k must be an integer in [1, 100000], got ??c?]"),
    ("SELECT id FROM t WHERE vector MATCH '[1, 0]' AND k = ?", ("ten" * 100,),
     "embedding t: k must be an integer in [1, 100000], got "
     + ("ten" * 100)[:200] + "..."),
    ("SELECT id FROM t WHERE vector MATCH '[1, 0]' AND k = ?", ("a\tb",),
     "embedding t: k must be an integer in [1, 100000], got a\tb"),
    ("SELECT id FROM t WHERE vector MATCH '[1, 0]' AND k = 2.5", (),
     "embedding t: k must be an integer in [1, 100000], got 2.5"),
    ("SELECT embed_lookup(CAST(? AS TEXT), 1)", (b"\xb7\xa3c?]",),
     "embed_lookup: no embedding table named '??c?]'"),
    ("SELECT embed_update(CAST(? AS TEXT), 1, '[1, 1]', 0.1)",
     (b"t\xc3\xa9\xff",), "embed_update: no embedding table named 't\u00e9?'"),
    ("SELECT embed_lookup(?, 1)", ("\u20ac" * 100,),
     "embed_lookup: no embedding table named '" + "\u20ac" * 67 + "...'"),
    ("SELECT embed_lookup(?, 1)", (b"t",),
     "embed_lookup: the table name must be TEXT, got BLOB"),
    ("SELECT * FROM embed_file(?)", (b"\xb7\xa3c?]",),
     "embed_file: the path must be TEXT, got a BLOB of 5 bytes"),
    ("SELECT * FROM embed_file('vec.txt', ?)", (b"glove",),
     "embed_file: the format must be TEXT, got a BLOB of 5 bytes"),
    ("SELECT * FROM embed_file(CAST(? AS TEXT))", (b"\xb7\xa3c?]",),
     "embed_file: cannot open '??c?]': No such file or directory"),
    ("SELECT * FROM embed_file('vec.txt', CAST(? AS TEXT))", (b"glo\xffve",),
     "embed_file: unknown format 'glo?ve' (expected word2vec, "
     "word2vec-binary, glove, fasttext or npy)"),
    ("SELECT embed_save('out.vec', CAST(? AS TEXT), 'a', '[1]')",
     (b"\xb7\xa3",), "embed_save: unknown format '??' (expected word2vec, "
     "word2vec-binary, fasttext, glove or npy)"),
    ("SELECT embed_save('out.vec', 'glove', CAST(? AS TEXT), '[1]')",
     (b"\xb7 \xa3",), "embed_save: token '? ?' contains whitespace (the file "
     "formats separate with it)"),
    ("SELECT embed_save('out.vec', 'glove', ?, NULL)", ("w" * 300,),
     "embed_save: NULL vector for token '" + "w" * 200 + "...'"),
    ("SELECT embed_save(CAST(? AS TEXT), 'glove', 'a', '[1]')",
     (b"no-such-dir\xff/x.vec",), "embed_save: cannot create a temporary "
     "file next to 'no-such-dir?/x.vec': No such file or directory"),
    ("INSERT INTO t(t) VALUES (CAST(? AS TEXT))", (b"\xb7\xa3",),
     "embedding t: unknown command '??'; the commands are: build-index, "
     "integrity-check, reset-optimizer, step"),
]


@pytest.mark.parametrize("case", EXACT, ids=[c[0][:50] for c in EXACT])
def test_exact_messages(tdb, case, report):
    sql, params, message = case
    assert check_message(tdb, sql, params, sql) == message
