"""A batch embed_update is one transaction: from a read-only statement in
autocommit mode it commits as a whole, and when the commit cannot happen
(another connection holds the lock) nothing changes and no transaction is
left open."""
import sqlite3

import pytest

from conftest import EXT


def open_db(path):
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    conn.enable_load_extension(True)
    conn.load_extension(EXT)
    return conn


def step_error(conn, ids, grads, lr):
    """The message of a failing embed_update batch on t (None if it ran)."""
    try:
        conn.execute("SELECT embed_update('t', ?, ?, ?)", (ids, grads, lr)).fetchone()
    except sqlite3.DatabaseError as e:
        return str(e)
    return None


def rows(conn):
    return conn.execute("SELECT id, embed_json(vector) FROM t").fetchall()


def everything(conn):
    """t's rows, optimizer states (kept after each weight in t_vectors for
    adagrad and adam, as t_state's rows for momentum) and config rows (the
    step count)."""
    return (rows(conn),
            conn.execute("SELECT id, hex(vector) FROM t_vectors ORDER BY id").fetchall(),
            conn.execute("SELECT id, hex(state) FROM t_state ORDER BY id").fetchall(),
            conn.execute("SELECT key, value FROM t_config ORDER BY key").fetchall())


def stepped(conn):
    """The ids whose optimizer state is not the initial (all zeros) one."""
    return [i for i, s in conn.execute(
        "SELECT id, embed_optimizer_state('t', id) FROM t") if s and any(s)]


def damage_state(conn, id_):
    """Make row id_'s stored optimizer state unreadable: a NaN in the state
    after its weight (adagrad and adam: layout 3; momentum: layout 4), or a
    1-byte t_state BLOB (layout 2)."""
    if int(conn.execute("SELECT value FROM t_config WHERE key = 'layout'").fetchone()[0]) >= 3:
        conn.execute("UPDATE t_vectors SET vector = CAST(substr(vector, 1, 8) || "
                     "x'0000c07f' || substr(vector, 13) AS BLOB) WHERE id = ?", (id_,))
    else:
        conn.execute("UPDATE t_state SET state = x'00' WHERE id = ?", (id_,))


def assert_step_fails_keeping(conn, ids, grads, lr, want, kept):
    """A step inside the caller's transaction fails with a message holding
    want, keeps the transaction open, and leaves everything(conn) == kept."""
    raised = step_error(conn, ids, grads, lr)
    assert raised is not None and want in raised, (ids, raised)
    assert conn.in_transaction
    assert everything(conn) == kept


def test_batch_commits_once_and_is_visible(tmp_path):
    a = open_db(str(tmp_path / "db"))
    a.execute("CREATE VIRTUAL TABLE t USING embedding(dim=2, num_embeddings=3, init=zeros)")
    assert a.execute("SELECT embed_update('t', '[0, 2, 0]', "
                     "'[[1, 1], [2, 2], [1, 1]]', 1)").fetchone() == (2,)
    assert not a.in_transaction
    b = open_db(str(tmp_path / "db"))
    assert rows(b) == [(0, "[-2,-2]"), (1, "[0,0]"), (2, "[-2,-2]")]


def test_batch_that_cannot_commit_changes_nothing(tmp_path):
    a = open_db(str(tmp_path / "db"))
    a.execute("CREATE VIRTUAL TABLE t USING embedding(dim=2, num_embeddings=3, init=zeros)")
    b = open_db(str(tmp_path / "db"))
    b.execute("BEGIN")
    b.execute("SELECT count(*) FROM t").fetchone()  # b holds a read lock
    try:
        a.execute("SELECT embed_update('t', '[0, 1]', '[[1, 1], [1, 1]]', 1)").fetchone()
        raised = None
    except sqlite3.OperationalError as e:
        raised = str(e)
    assert raised == "embed_update: database is locked; nothing was changed"
    assert not a.in_transaction
    b.execute("COMMIT")
    assert rows(a) == [(0, "[0,0]"), (1, "[0,0]"), (2, "[0,0]")]
    assert rows(b) == rows(a)


def test_batch_inside_a_writing_statement_rolls_back_with_it(tmp_path):
    a = open_db(str(tmp_path / "db"))
    a.execute("CREATE VIRTUAL TABLE t USING embedding(dim=2, num_embeddings=2, init=zeros)")
    a.execute("CREATE TABLE log(x INTEGER CHECK (x < 0))")
    try:
        a.execute("INSERT INTO log SELECT embed_update('t', '[0, 1]', '[[1, 1], [1, 1]]', 1)")
    except sqlite3.IntegrityError:
        pass
    else:
        raise AssertionError("the CHECK constraint should have failed")
    assert rows(a) == [(0, "[0,0]"), (1, "[0,0]")]


def test_unnamed_form_never_picks_main_for_another_schemas_table(tmp_path):
    # count(embed_update(id, ...)) is not bound to the queried table by SQLite
    # (no xFindFunction inside aggregates): it must not update main's table
    a = open_db(str(tmp_path / "main.db"))
    a.execute(f"ATTACH '{tmp_path / 'aux.db'}' AS aux")
    a.execute("CREATE VIRTUAL TABLE main.t USING embedding(dim=2, num_embeddings=2, init=zeros)")
    a.execute("CREATE VIRTUAL TABLE aux.tok USING embedding(dim=2, num_embeddings=2, init=zeros)")
    try:
        a.execute("SELECT count(embed_update(id, '[1, 1]', 1)) FROM aux.tok").fetchone()
        raised = None
    except sqlite3.OperationalError as e:
        raised = str(e)
    assert raised == ("embed_update: embedding table aux.tok is in use outside the "
                      "main schema; name the table as the first argument")
    assert rows(a) == [(0, "[0,0]"), (1, "[0,0]")]
    assert a.execute("SELECT count(embed_update('aux.tok', id, '[1, 1]', 1)) "
                     "FROM aux.tok").fetchone() == (2,)


def test_batch_failing_late_inside_a_transaction_puts_rows_back(tmp_path):
    """A batch rewrites each row in place as it goes; a failure at a later
    (higher) id puts the earlier rows back and keeps the caller's
    transaction and its other writes."""
    a = open_db(str(tmp_path / "db"))
    a.execute("CREATE VIRTUAL TABLE t USING embedding(dim=2, num_embeddings=4, init=zeros, max_norm=1)")
    a.execute("CREATE TABLE other(x)")
    a.execute("BEGIN")
    a.execute("INSERT INTO other VALUES (1)")
    a.execute("UPDATE t SET vector = '[3, 4]' WHERE id = 0")
    before = rows(a)
    for ids, grads, lr, want in [
        ("[2, 0, 9]", "[[1, 1], [1, 1], [1, 1]]", 1, "no id 9"),
        ("[0, 1, 3]", "[[1, 1], [1, 1], [3e38, 3e38]]", 3e38, "of id 3 not finite"),
    ]:
        raised = step_error(a, ids, grads, lr)
        assert raised is not None and want in raised, raised
        assert a.in_transaction
        assert rows(a) == before
    a.execute("COMMIT")
    assert a.execute("SELECT x FROM other").fetchall() == [(1,)]
    assert rows(a) == before


def test_momentum_moves_other_rows_and_checks_their_states(tmp_path):
    """With momentum a step also moves every row that has a buffer; those
    states are checked like the batch's."""
    a = open_db(str(tmp_path / "db"))
    a.execute("CREATE VIRTUAL TABLE t USING embedding(dim=2, num_embeddings=6, "
              "init=zeros, optimizer=sgd, momentum=0.5)")
    a.execute("SELECT embed_update('t', '[1, 3, 4]', '[[1, 1], [2, 2], [4, 4]]', 1)").fetchone()
    # step 2 on id 0 alone: ids 1, 3, 4 move by their buffers (0.5 * buf)
    assert a.execute("SELECT embed_update('t', 0, '[1, 1]', 1)").fetchone() == (4,)
    assert rows(a) == [(0, "[-1,-1]"), (1, "[-1.5,-1.5]"), (2, "[0,0]"),
                       (3, "[-3,-3]"), (4, "[-6,-6]"), (5, "[0,0]")]
    damage_state(a, 3)
    before = rows(a)
    try:
        a.execute("SELECT embed_update('t', 5, '[1, 1]', 1)").fetchone()
        raised = None
    except sqlite3.DatabaseError as e:
        raised = str(e)
    assert raised is not None and "corrupt optimizer state for id 3" in raised, raised
    assert rows(a) == before


@pytest.mark.parametrize("options", ["momentum=0.5", "momentum=0.5, nesterov=1",
                                     "momentum=0.5, weight_decay=0.1"])
def test_momentum_failing_on_another_row_puts_everything_back(tmp_path, options):
    """The rows outside the batch that a momentum step moves are rewritten
    in place, states then weights (with weight_decay, each state with its
    row): a failure at one of them, a step that overflows or a damaged
    state, puts back the batch's rows and every state and row rewritten
    before it, and keeps the caller's transaction."""
    a = open_db(str(tmp_path / "db"))
    a.execute("CREATE VIRTUAL TABLE t USING embedding(dim=2, num_embeddings=6, "
              f"init=zeros, optimizer=sgd, {options})")
    a.execute("SELECT embed_update('t', '[1, 3, 4]', '[[1, 1], [2, 2], [40, 40]]', 1)").fetchone()
    a.execute("SELECT embed_update('t', 0, '[1, 1]', 1)").fetchone()
    a.execute("BEGIN")
    before = everything(a)
    # id 5 has no buffer and a zero gradient: it stays finite; id 4's
    # buffer times lr overflows, after ids 0, 1 and 3 have moved
    assert_step_fails_keeping(a, "[5]", "[[0, 0]]", 3e38, "of id 4 not finite", before)
    damage_state(a, 3)
    assert_step_fails_keeping(a, "[5]", "[[1, 1]]", 0.1,
                              "corrupt optimizer state for id 3", everything(a))
    a.execute("ROLLBACK")
    assert everything(a) == before


@pytest.mark.parametrize("optimizer", ["adagrad", "adam", "sgd, momentum=0.9"])
@pytest.mark.parametrize("steps_before", [1, 2])
def test_batch_failing_late_inside_a_transaction_keeps_states(tmp_path, optimizer,
                                                              steps_before):
    """The rows a failing batch steps before its bad row already have
    optimizer states (an earlier step made them): the late failure leaves
    those states, the step count and the rows as they were, and keeps the
    caller's transaction. After one earlier step (which found no state
    stored) the batch reads its states first in one query; after two (the
    second found them all) it rewrites each in place: adagrad, adam and
    momentum move every state first, then every weight."""
    a = open_db(str(tmp_path / "db"))
    a.execute("CREATE VIRTUAL TABLE t USING embedding(dim=2, num_embeddings=4, "
              f"init=zeros, optimizer={optimizer})")
    for _ in range(steps_before):
        a.execute("SELECT embed_update('t', '[0, 1, 2]', "
                  "'[[1, 1], [2, 2], [3, 3]]', 0.1)").fetchone()
    a.execute("BEGIN")
    before = everything(a)
    assert stepped(a) == [0, 1, 2]
    for ids, grads, lr, want in [
        # ids 0 and 1 step first; 3's gradient overflows its state or row
        ("[0, 1, 3]", "[[1, 1], [1, 1], [3e38, 3e38]]", 10, "id 3 not finite"),
        # an unknown id after stepped ones (its state would be a new one)
        ("[0, 1, 9]", "[[1, 1], [1, 1], [1, 1]]", 0.1, "no id 9"),
        # a stored state overflows in the middle; the states of the rows
        # after it may already be rewritten (all states are stepped
        # before the weights when the optimizer allows)
        ("[0, 1, 2]", "[[1, 1], [3e38, 3e38], [1, 1]]", 10, "id 1 not finite"),
    ]:
        assert_step_fails_keeping(a, ids, grads, lr, want, before)
    # a damaged stored state after stepped ones
    damage_state(a, 2)
    assert_step_fails_keeping(a, "[0, 1, 2]", "[[1, 1], [1, 1], [1, 1]]", 0.1,
                              "corrupt optimizer state for id 2", everything(a))
    a.execute("ROLLBACK")
    assert everything(a) == before
