"""embed_lookup (the forward pass) and embed_update (one SGD step), against
torch.nn.Embedding and torch.optim.SGD (README: Lookup and training).

The reference for a step: an Embedding built from the table's own weights
with `from_pretrained(W, freeze=False, sparse=True, padding_idx=...,
max_norm=..., norm_type=...)`, a loss `(emb(ids) * G).sum()` so that the
gradient of the i-th looked-up row is G[i], and one `torch.optim.SGD(lr)`
step. PyTorch cannot combine sparse gradients with scale_grad_by_freq, so
those cases use sparse=False (a dense gradient whose rows that were not looked
up are zero, which plain SGD leaves untouched: the same step).

Tolerance: lookups without max_norm are bit-exact copies. Everything that
computes (max_norm rescaling, steps) is compared with rtol=1e-6 and
atol=1e-6 on values of order 1, i.e. |table - torch| <= 1e-6 * (1 + |torch|):
float32 results that may differ from PyTorch's by the order of summation of
repeated ids' gradients (a few float32 ulps), never more.
"""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import error_of, from_blob, one, row, to_blob, weights

torch.set_num_threads(1)

RTOL = ATOL = 1e-6
N, D = 16, 6


def make_table(db, name="tok", **opts):
    opts = {"num_embeddings": N, "dim": D, "seed": 7, **opts}
    args = ", ".join(f"{k}={v}" for k, v in opts.items())
    db.execute(f'CREATE VIRTUAL TABLE "{name}" USING embedding({args})')
    return weights(db, name, opts["num_embeddings"])


def torch_embedding(W, padding_idx=None, max_norm=None, norm_type=2.0,
                    scale_grad_by_freq=False):
    return torch.nn.Embedding.from_pretrained(
        torch.tensor(W), freeze=False, sparse=not scale_grad_by_freq,
        padding_idx=padding_idx, max_norm=max_norm, norm_type=norm_type,
        scale_grad_by_freq=scale_grad_by_freq)


def torch_step(emb, ids, G, lr):
    opt = torch.optim.SGD(emb.parameters(), lr=lr)
    opt.zero_grad()
    (emb(torch.tensor(ids)) * torch.tensor(G)).sum().backward()
    opt.step()


def assert_close(got, ref):
    np.testing.assert_allclose(np.asarray(got, np.float64),
                               np.asarray(ref, np.float64), rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------ lookup


def test_lookup_single_equals_embedding_forward(db):
    W = make_table(db)
    emb = torch_embedding(W)
    for i in range(N):
        ref = emb(torch.tensor(i)).detach().numpy()
        assert one(db, "SELECT embed_lookup('tok', ?)", i) == to_blob(ref)
        assert one(db, "SELECT embed_lookup(?)", i) == to_blob(ref)


def test_lookup_batch_keeps_order_and_repeats(db, rng):
    W = make_table(db)
    emb = torch_embedding(W)
    for n in (1, 2, 5, 40):
        ids = [int(i) for i in rng.integers(0, N, n)]
        ids[-1] = ids[0]  # at least one repeat when n > 1
        ref = emb(torch.tensor(ids)).detach().numpy()
        got = one(db, "SELECT embed_lookup('tok', ?)", json.dumps(ids))
        assert isinstance(got, bytes) and len(got) == n * D * 4
        assert got == to_blob(ref)
        assert one(db, "SELECT embed_lookup(?)", json.dumps(ids)) == got
    assert from_blob(one(db, "SELECT embed_lookup('tok', '[3, 1, 3]')"), D).tolist() == \
        [W[3].tolist(), W[1].tolist(), W[3].tolist()]
    # JSON white space is fine
    assert one(db, "SELECT embed_lookup('tok', ' [ 2 ,2 ] ')") == to_blob(W[[2, 2]])


def test_lookup_bound_to_the_table_of_its_column(db):
    W = make_table(db)
    make_table(db, "other", seed=8)
    got = db.execute("SELECT id, embed_lookup(id) FROM tok WHERE id IN (1, 4)").fetchall()
    assert got == [(1, to_blob(W[1])), (4, to_blob(W[4]))]
    db.execute("CREATE TABLE tokens(pos, token_id)")
    db.executemany("INSERT INTO tokens VALUES (?, ?)", [(0, 5), (1, 2), (2, 5)])
    got = db.execute("SELECT t.pos, embed_lookup(e.id) FROM tokens t JOIN tok e "
                     "ON e.id = t.token_id ORDER BY t.pos").fetchall()
    assert got == [(0, to_blob(W[5])), (1, to_blob(W[2])), (2, to_blob(W[5]))]


def test_lookup_of_null_id_is_null(db):
    make_table(db)
    assert one(db, "SELECT embed_lookup('tok', NULL)") is None
    assert one(db, "SELECT embed_lookup(NULL)") is None


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1.0, 2.5])
def test_lookup_with_max_norm_equals_torch(db, rng, max_norm, norm_type):
    W = make_table(db, max_norm=max_norm, norm_type=norm_type, num_embeddings=30)
    W[3] = W[3] / np.linalg.norm(W[3], ord=norm_type) * (max_norm * 0.9)  # below the cap
    db.execute("UPDATE tok SET vector = ? WHERE id = 3", (to_blob(W[3]),))
    for i in range(30):
        ref = F.embedding(torch.tensor(i), torch.tensor(W), max_norm=max_norm,
                          norm_type=norm_type).numpy()
        got = from_blob(one(db, "SELECT embed_lookup('tok', ?)", i))
        assert_close(got, ref)
        assert np.linalg.norm(got.astype(np.float64), ord=norm_type) <= max_norm * (1 + 1e-6)
    assert one(db, "SELECT embed_lookup('tok', 3)") == to_blob(W[3])
    ids = [int(i) for i in rng.integers(0, 30, 25)]
    ref = F.embedding(torch.tensor(ids), torch.tensor(W), max_norm=max_norm,
                      norm_type=norm_type).numpy()
    got = from_blob(one(db, "SELECT embed_lookup('tok', ?)", json.dumps(ids)), D)
    assert_close(got, ref)


def test_lookup_with_max_norm_uses_torch_scale(db):
    # a row of norm 5 with max_norm 1 becomes v * 1 / (5 + 1e-7)
    db.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=2, max_norm=1)")
    db.execute("INSERT INTO tok(id, vector) VALUES (0, '[3, 4]')")
    got = from_blob(one(db, "SELECT embed_lookup('tok', 0)"))
    ref = F.embedding(torch.tensor(0), torch.tensor([[3.0, 4.0]]), max_norm=1.0).numpy()
    assert_close(got, ref)
    assert_close(got, np.array([3, 4]) * (1 / (5 + 1e-7)))


# ------------------------------------------------------------------ update

CONFIGS = [
    pytest.param({}, id="plain"),
    pytest.param({"padding_idx": 3}, id="padding"),
    pytest.param({"max_norm": 1.0}, id="max_norm"),
    pytest.param({"max_norm": 1.5, "norm_type": 1.0}, id="max_norm_p1"),
    pytest.param({"max_norm": 1.0, "norm_type": 3.0}, id="max_norm_p3"),
    pytest.param({"padding_idx": 0, "max_norm": 2.0}, id="padding_max_norm"),
    pytest.param({"scale_grad_by_freq": True}, id="scale_grad_by_freq"),
    pytest.param({"scale_grad_by_freq": True, "padding_idx": 5, "max_norm": 1.2},
                 id="scale_grad_by_freq_padding_max_norm"),
]


def table_options(cfg):
    return {k: (int(v) if isinstance(v, bool) else v) for k, v in cfg.items()}


@pytest.mark.parametrize("cfg", CONFIGS)
def test_batch_sgd_steps_equal_torch(db, rng, cfg):
    W = make_table(db, **table_options(cfg))
    emb = torch_embedding(W, **cfg)
    pad = cfg.get("padding_idx")
    for step in range(20):
        n = int(rng.integers(1, 12))
        ids = [int(i) for i in rng.integers(0, N, n)]
        if step % 3 == 0:
            ids += ids[: max(1, n // 2)]                  # repeated ids
        if pad is not None and step % 4 == 0:
            ids.append(pad)                              # padding ids
        G = rng.standard_normal((len(ids), D)).astype(np.float32)
        lr = float(rng.uniform(0.01, 0.7))
        torch_step(emb, ids, G, lr)
        changed = one(db, "SELECT embed_update('tok', ?, ?, ?)",
                      json.dumps(ids), to_blob(G), lr)
        assert changed == len(set(ids) - {pad})
        assert_close(weights(db, "tok", N), emb.weight.detach().numpy())
    if pad is not None:
        assert np.array_equal(row(db, "tok", pad), np.zeros(D, np.float32))


@pytest.mark.parametrize("cfg", [c for c in CONFIGS if "scale_grad_by_freq" not in c.values[0]])
def test_single_sgd_steps_equal_torch(db, rng, cfg):
    W = make_table(db, **table_options(cfg))
    emb = torch_embedding(W, **cfg)
    pad = cfg.get("padding_idx")
    for step in range(20):
        i = int(rng.integers(0, N)) if pad is None or step % 5 else pad
        g = rng.standard_normal(D).astype(np.float32)
        lr = float(rng.uniform(0.01, 0.7))
        torch_step(emb, [i], g[None, :], lr)
        changed = one(db, "SELECT embed_update('tok', ?, ?, ?)", i, to_blob(g), lr)
        assert changed == (0 if i == pad else 1)
        assert_close(weights(db, "tok", N), emb.weight.detach().numpy())


def test_plain_sgd_is_w_minus_lr_grad(db, rng):
    W = make_table(db)
    g = rng.standard_normal(D).astype(np.float32)
    assert one(db, "SELECT embed_update('tok', 4, ?, 0.25)", to_blob(g)) == 1
    expect = W.copy()
    expect[4] = W[4] - np.float32(0.25) * g
    assert_close(weights(db, "tok", N), expect)
    # untouched rows are bit-identical
    got = weights(db, "tok", N)
    assert all(np.array_equal(got[i], W[i]) for i in range(N) if i != 4)


def test_repeated_ids_have_their_gradients_summed(db, rng):
    W = make_table(db)
    G = rng.standard_normal((3, D)).astype(np.float32)
    assert one(db, "SELECT embed_update('tok', '[2, 9, 2]', ?, 0.5)", to_blob(G)) == 2
    got = weights(db, "tok", N)
    assert_close(got[2], W[2] - 0.5 * (G[0].astype(np.float64) + G[2]))
    assert_close(got[9], W[9] - 0.5 * G[1].astype(np.float64))


def test_scale_grad_by_freq_divides_by_count(db, rng):
    W = make_table(db, scale_grad_by_freq=1)
    G = rng.standard_normal((4, D)).astype(np.float32)
    one(db, "SELECT embed_update('tok', '[2, 9, 2, 2]', ?, 0.5)", to_blob(G))
    got = weights(db, "tok", N)
    assert_close(got[2], W[2] - 0.5 * (G[0].astype(np.float64) + G[2] + G[3]) / 3)
    assert_close(got[9], W[9] - 0.5 * G[1].astype(np.float64))


def test_json_gradients_equal_blob_gradients(db, rng):
    make_table(db, "a")
    make_table(db, "b")
    ids = [1, 5, 1, 0]
    G = rng.standard_normal((4, D)).astype(np.float32)
    text = "[" + ",".join(one(db, "SELECT embed_json(?)", to_blob(g)) for g in G) + "]"
    assert one(db, "SELECT embed_update('a', ?, ?, 0.3)", json.dumps(ids), to_blob(G)) == 3
    assert one(db, "SELECT embed_update('b', ?, ?, 0.3)", json.dumps(ids), text) == 3
    assert np.array_equal(weights(db, "a", N), weights(db, "b", N))
    # single id: the gradient as JSON
    g = G[0]
    one(db, "SELECT embed_update('a', 7, ?, 0.3)", to_blob(g))
    one(db, "SELECT embed_update('b', 7, ?, 0.3)", one(db, "SELECT embed_json(?)", to_blob(g)))
    assert np.array_equal(row(db, "a", 7), row(db, "b", 7))


def test_update_then_lookup_with_max_norm_matches_torch(db, rng):
    # a training loop: forward (lookup), backward, step, and again
    W = make_table(db, max_norm=1.0)
    emb = torch_embedding(W, max_norm=1.0)
    for _ in range(10):
        ids = [int(i) for i in rng.integers(0, N, 6)]
        out = emb(torch.tensor(ids))
        got = from_blob(one(db, "SELECT embed_lookup('tok', ?)", json.dumps(ids)), D)
        assert_close(got, out.detach().numpy())
        G = rng.standard_normal((6, D)).astype(np.float32)
        opt = torch.optim.SGD(emb.parameters(), lr=0.1)
        opt.zero_grad()
        (out * torch.tensor(G)).sum().backward()
        opt.step()
        one(db, "SELECT embed_update('tok', ?, ?, 0.1)", json.dumps(ids), to_blob(G))
        # rows looked up are stored as torch's weight; the others are not
        # touched by a lookup in the extension (torch renormalizes in place
        # only rows it looks up, the same rows)
        ref = emb.weight.detach().numpy()
        got_w = weights(db, "tok", N)
        for i in set(ids):
            assert_close(got_w[i], ref[i])


def test_zero_learning_rate_changes_nothing(db, rng):
    W = make_table(db)
    G = rng.standard_normal((2, D)).astype(np.float32)
    assert one(db, "SELECT embed_update('tok', '[1, 2]', ?, 0)", to_blob(G)) == 2
    assert np.array_equal(weights(db, "tok", N), W)


def test_integer_learning_rate(db):
    W = make_table(db)
    one(db, "SELECT embed_update('tok', 1, '[1, 1, 1, 1, 1, 1]', 2)")
    assert_close(row(db, "tok", 1), W[1] - 2)


# -------------------------------------------------- table resolution forms


def test_bound_three_argument_form(db, rng):
    W = make_table(db)
    make_table(db, "other", seed=8)
    g = rng.standard_normal(D).astype(np.float32)
    got = db.execute("SELECT embed_update(id, ?, 0.1) FROM tok WHERE id = 3",
                     (to_blob(g),)).fetchall()
    assert got == [(1,)]
    assert_close(row(db, "tok", 3), W[3] - 0.1 * g.astype(np.float64))
    # every row of a scan, each once
    got = db.execute("SELECT embed_update(id, ?, 1) FROM tok", (to_blob(np.ones(D)),)).fetchall()
    assert got == [(1,)] * N
    after = weights(db, "tok", N)
    expect = W.astype(np.float64) - 1
    expect[3] -= 0.1 * g
    assert_close(after, expect)


def test_bound_form_respects_padding(db):
    W = make_table(db, padding_idx=2)
    got = db.execute("SELECT id, embed_update(id, '[1, 1, 1, 1, 1, 1]', 1) FROM tok "
                     "WHERE id IN (1, 2)").fetchall()
    assert got == [(1, 1), (2, 0)]
    assert np.array_equal(row(db, "tok", 2), np.zeros(D, np.float32))
    assert_close(row(db, "tok", 1), W[1] - 1)


def test_only_table_forms(db, rng):
    W = make_table(db)
    g = rng.standard_normal(D).astype(np.float32)
    assert one(db, "SELECT embed_update(5, ?, 0.5)", to_blob(g)) == 1
    assert_close(row(db, "tok", 5), W[5] - 0.5 * g.astype(np.float64))
    assert one(db, "SELECT embed_update('[6, 6]', ?, 0.5)", to_blob(np.stack([g, g]))) == 1
    assert_close(row(db, "tok", 6), W[6] - 1.0 * g.astype(np.float64))
    assert one(db, "SELECT embed_lookup(5)") == to_blob(row(db, "tok", 5))
    # ordinary tables and tables of other schemas are no candidates
    db.execute("CREATE TABLE plain(a)")
    db.execute("ATTACH ':memory:' AS aux")
    db.execute("CREATE VIRTUAL TABLE aux.emb USING embedding(dim=2, num_embeddings=1)")
    assert one(db, "SELECT embed_lookup(5)") == to_blob(row(db, "tok", 5))


def test_two_tables_give_an_error_listing_them(db):
    make_table(db, "tok")
    make_table(db, "words")
    for sql in ["SELECT embed_update(1, '[1, 1, 1, 1, 1, 1]', 0.1)",
                "SELECT embed_lookup(1)"]:
        fn = sql.split()[1].split("(")[0]
        assert error_of(db, sql) == \
            f"{fn}: 2 embedding tables (tok, words); name one as the first argument"


def test_no_table_error(db):
    db.execute("CREATE TABLE plain(a)")
    assert error_of(db, "SELECT embed_lookup(1)") == (
        "embed_lookup: no embedding table in the main schema; create one or "
        "name it as the first argument")


def test_named_table_in_attached_schema(db):
    db.execute("ATTACH ':memory:' AS aux")
    db.execute("CREATE VIRTUAL TABLE aux.tok USING embedding(dim=2, num_embeddings=3, seed=1)")
    db.execute("CREATE VIRTUAL TABLE main.tok USING embedding(dim=2, num_embeddings=3, seed=2)")
    aux0 = from_blob(db.execute("SELECT vector FROM aux.tok WHERE id = 0").fetchone()[0])
    main0 = from_blob(db.execute("SELECT vector FROM main.tok WHERE id = 0").fetchone()[0])
    assert one(db, "SELECT embed_lookup('aux.tok', 0)") == to_blob(aux0)
    assert one(db, "SELECT embed_lookup('tok', 0)") == to_blob(main0)
    assert one(db, "SELECT embed_update('aux.tok', 0, '[1, 1]', 1)") == 1
    assert_close(from_blob(db.execute("SELECT vector FROM aux.tok WHERE id = 0").fetchone()[0]),
                 aux0 - 1)
    assert np.array_equal(from_blob(db.execute("SELECT vector FROM main.tok WHERE id = 0").fetchone()[0]), main0)


# ---------------------------------------------------------- return values


def test_return_values(db):
    make_table(db, padding_idx=0)
    g = "[1, 1, 1, 1, 1, 1]"
    g2 = "[[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]]"
    g4 = "[" + ",".join(["[1, 1, 1, 1, 1, 1]"] * 4) + "]"
    assert one(db, "SELECT embed_update('tok', 1, ?, 0.1)", g) == 1
    assert one(db, "SELECT embed_update('tok', 0, ?, 0.1)", g) == 0
    assert one(db, "SELECT embed_update('tok', '[0, 0]', ?, 0.1)", g2) == 0
    assert one(db, "SELECT embed_update('tok', '[3, 3]', ?, 0.1)", g2) == 1
    assert one(db, "SELECT embed_update('tok', '[3, 0, 4, 3]', ?, 0.1)", g4) == 2
    assert one(db, "SELECT embed_update('tok', '[1, 2, 3, 4]', ?, 0.1)", g4) == 4
    assert one(db, "SELECT typeof(embed_update('tok', 1, ?, 0.1))", g) == "integer"


def test_only_table_form_follows_schema_changes_of_other_connections(db_path):
    from conftest import connect
    a, b = connect(db_path), connect(db_path)
    a.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=2, num_embeddings=3, seed=1)")
    assert len(one(a, "SELECT embed_lookup(1)")) == 8
    assert len(one(a, "SELECT embed_lookup(1)")) == 8
    b.execute("DROP TABLE tok")
    b.execute("CREATE VIRTUAL TABLE other USING embedding(dim=3, num_embeddings=3, seed=1)")
    assert len(one(a, "SELECT embed_lookup(1)")) == 12
    b.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=4, num_embeddings=3, seed=1)")
    assert error_of(a, "SELECT embed_lookup(1)") == \
        "embed_lookup: 2 embedding tables (other, tok); name one as the first argument"
    b.execute("DROP TABLE other")
    assert len(one(a, "SELECT embed_lookup(1)")) == 16
    assert one(a, "SELECT embed_update(1, '[1, 1, 1, 1]', 1)") == 1
    assert one(b, "SELECT embed_lookup(1)") == one(a, "SELECT embed_lookup(1)")
    a.execute("BEGIN")
    a.execute("DROP TABLE tok")
    assert error_of(a, "SELECT embed_lookup(1)").startswith("embed_lookup: no embedding table")
    a.execute("ROLLBACK")
    assert len(one(a, "SELECT embed_lookup(1)")) == 16
    a.close()
    b.close()


# --------------------------------------------------------------- optimizers
# README, Optimizers: optimizer=sgd|adagrad|adam with PyTorch's names and
# defaults, matching torch's sparse-gradient SGD, Adagrad and SparseAdam step
# for step (same tolerance as above). torch cannot combine sparse gradients
# with weight_decay, so weight_decay has no reference here.

OPTIMIZERS = [
    pytest.param("optimizer=sgd, momentum=0.9",
                 lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9), id="sgd-momentum"),
    pytest.param("optimizer=sgd, momentum=0.5, dampening=0.3",
                 lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.5, dampening=0.3),
                 id="sgd-dampening"),
    pytest.param("optimizer=sgd, momentum=0.9, nesterov=true",
                 lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True),
                 id="sgd-nesterov"),
    pytest.param("optimizer=sgd, maximize=true",
                 lambda p, lr: torch.optim.SGD(p, lr=lr, maximize=True), id="sgd-maximize"),
    pytest.param("optimizer=adagrad",
                 lambda p, lr: torch.optim.Adagrad(p, lr=lr), id="adagrad"),
    pytest.param("optimizer=adagrad, lr_decay=0.05, initial_accumulator_value=0.2, eps=1e-6",
                 lambda p, lr: torch.optim.Adagrad(p, lr=lr, lr_decay=0.05,
                                                   initial_accumulator_value=0.2, eps=1e-6),
                 id="adagrad-options"),
    pytest.param("optimizer=adagrad, maximize=true, padding_idx=2",
                 lambda p, lr: torch.optim.Adagrad(p, lr=lr, maximize=True),
                 id="adagrad-maximize-padding"),
    pytest.param("optimizer=adam",
                 lambda p, lr: torch.optim.SparseAdam(list(p), lr=lr), id="adam"),
    pytest.param("optimizer=adam, betas=(0.8, 0.99), eps=1e-6",
                 lambda p, lr: torch.optim.SparseAdam(list(p), lr=lr, betas=(0.8, 0.99), eps=1e-6),
                 id="adam-options"),
    pytest.param("optimizer=adam, maximize=true, padding_idx=2, max_norm=1.5",
                 lambda p, lr: torch.optim.SparseAdam(list(p), lr=lr, maximize=True),
                 id="adam-maximize-padding-max-norm"),
]


def option_value(opts, key):
    for part in opts.split(", "):
        k, _, v = part.partition("=")
        if k == key:
            return v
    return None


def optimizer_run(db, rng, opts, make_opt, steps, lr_of_step=None):
    """Train the table and a torch Embedding side by side on the same random
    batches; compare all rows after every step. Returns (emb, make)."""
    pad = option_value(opts, "padding_idx")
    pad = int(pad) if pad is not None else None
    max_norm = option_value(opts, "max_norm")
    max_norm = float(max_norm) if max_norm is not None else None
    db.execute(f"CREATE VIRTUAL TABLE tok USING embedding(num_embeddings={N}, dim={D}, "
               f"seed=7, {opts})")
    W = weights(db, "tok", N)
    emb = torch_embedding(W, padding_idx=pad, max_norm=max_norm)
    opt = make_opt(emb.parameters(), 0.1)
    momentum = float(option_value(opts, "momentum") or 0)
    moved = set()  # rows holding a momentum buffer: torch moves them every step
    for step in range(steps):
        n = int(rng.integers(1, 7))
        ids = [int(i) for i in rng.integers(0, N, n)]
        if step % 3 == 1:
            ids += ids[:1]
        if pad is not None and step % 4 == 0:
            ids.append(pad)
        G = rng.standard_normal((len(ids), D)).astype(np.float32)
        lr = float(rng.uniform(0.01, 0.3)) if lr_of_step is None else lr_of_step
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        (emb(torch.tensor(ids)) * torch.tensor(G)).sum().backward()
        opt.step()
        if momentum:
            moved |= set(ids) - {pad}
        assert one(db, "SELECT embed_update('tok', ?, ?, ?)",
                   json.dumps(ids), to_blob(G), lr) == len((moved | set(ids)) - {pad})
        assert_close(weights(db, "tok", N), emb.weight.detach().numpy())
    return emb


@pytest.mark.parametrize("opts,make_opt", OPTIMIZERS)
def test_optimizers_match_torch_step_for_step(db, rng, opts, make_opt):
    optimizer_run(db, rng, opts, make_opt, steps=15)


@pytest.mark.parametrize("opts,make_opt", [OPTIMIZERS[0], OPTIMIZERS[4], OPTIMIZERS[7]])
def test_optimizer_state_is_rolled_back(db, rng, opts, make_opt):
    # a rolled back step leaves no trace in the rows, the state or the step count
    db.execute(f"CREATE VIRTUAL TABLE tok USING embedding(num_embeddings={N}, dim={D}, "
               f"seed=7, {opts})")
    emb = torch_embedding(weights(db, "tok", N))
    opt = make_opt(emb.parameters(), 0.1)
    batches = [([1, 2, 1], rng.standard_normal((3, D)).astype(np.float32)) for _ in range(3)]
    junk = rng.standard_normal((4, D)).astype(np.float32)
    for n, (ids, G) in enumerate(batches):
        if n == 1:
            db.execute("BEGIN")
            one(db, "SELECT embed_update('tok', '[1, 2, 3, 2]', ?, 0.1)", to_blob(junk))
            db.execute("ROLLBACK")
        opt.zero_grad()
        (emb(torch.tensor(ids)) * torch.tensor(G)).sum().backward()
        opt.step()
        one(db, "SELECT embed_update('tok', ?, ?, 0.1)", json.dumps(ids), to_blob(G))
        assert_close(weights(db, "tok", N), emb.weight.detach().numpy())


@pytest.mark.parametrize("opts,make_opt", [OPTIMIZERS[0], OPTIMIZERS[5], OPTIMIZERS[7]])
def test_optimizer_reset_is_a_new_torch_optimizer(db, rng, opts, make_opt):
    db.execute(f"CREATE VIRTUAL TABLE tok USING embedding(num_embeddings={N}, dim={D}, "
               f"seed=7, {opts})")
    emb = torch_embedding(weights(db, "tok", N))
    for phase in range(2):
        if phase:
            db.execute("SELECT embed_optimizer_reset('tok')").fetchall()
        opt = make_opt(emb.parameters(), 0.1)
        for _ in range(4):
            # every row in every step, so that only the reset is under test
            ids = [int(i) for i in rng.permutation(N)] + [0, 1]
            G = rng.standard_normal((len(ids), D)).astype(np.float32)
            opt.zero_grad()
            (emb(torch.tensor(ids)) * torch.tensor(G)).sum().backward()
            opt.step()
            one(db, "SELECT embed_update('tok', ?, ?, 0.1)", json.dumps(ids), to_blob(G))
            assert_close(weights(db, "tok", N), emb.weight.detach().numpy())


def test_optimizer_state_survives_reopen_and_rename(db_path, rng):
    from conftest import connect
    conn, name = connect(db_path), "tok"
    conn.execute(f"CREATE VIRTUAL TABLE tok USING embedding(num_embeddings={N}, dim={D}, "
                 "seed=7, optimizer=adam)")
    emb = torch_embedding(weights(conn, "tok", N))
    opt = torch.optim.SparseAdam(list(emb.parameters()), lr=0.1)
    for step in range(8):
        if step == 3:
            conn.close()
            conn = connect(db_path)
        if step == 5:
            conn.execute("ALTER TABLE tok RENAME TO tik")
            name = "tik"
        ids = [int(i) for i in rng.integers(0, N, 5)]
        G = rng.standard_normal((5, D)).astype(np.float32)
        opt.zero_grad()
        (emb(torch.tensor(ids)) * torch.tensor(G)).sum().backward()
        opt.step()
        one(conn, "SELECT embed_update(?, ?, ?, 0.1)", name, json.dumps(ids), to_blob(G))
        assert_close(weights(conn, name, N), emb.weight.detach().numpy())
    conn.execute("DROP TABLE tik")
    assert conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] == 0
    conn.close()
