"""The PyTorch oracle: training inside the database, step for step as
PyTorch does it (README: Lookup and training, Optimizers).

Every case runs the same random batches through two implementations:

  torch   nn.Embedding.from_pretrained(W, freeze=False, sparse=True,
          padding_idx=..., max_norm=..., norm_type=...) and the optimizer
          (SGD, Adagrad, SparseAdam), loss = (emb(ids) * G).sum(), so the
          gradient of the i-th looked-up row is G[i];
  embed   embed_lookup('t', json_ids) (the forward) and
          embed_update('t', json_ids, G.tobytes(), lr) (the step),

where W is read from the table right after CREATE, so both start equal.
Before each step the forward passes are compared (max_norm included); after
it the weights; at the end the weights, the optimizer state (Adagrad's
`sum`, SparseAdam's `exp_avg`/`exp_avg_sq`, SGD's `momentum_buffer`, read
with embed_optimizer_state: D floats per row, or m then v for adam; stored
after each row's weight in adagrad and adam tables, in t_state for SGD's)
and the step count.

Where PyTorch has no sparse path, the reference is built as follows (and is
the same computation):
  - scale_grad_by_freq: torch's sparse backward refuses it, so the gradient
    comes from a dense (sparse=False) Embedding; plain SGD takes it as is (a
    zero row is left untouched), Adagrad and SparseAdam take the rows that
    were looked up as a sparse COO gradient (what the sparse backward would
    produce).
  - SGD with momentum, dampening, nesterov or weight_decay: torch's sparse
    SGD is not the lazy row-wise update, so these run sparse=False with
    FULL-BATCH steps (every row in every step), where lazy and dense agree.
  - a batch of padding ids only: torch's Adagrad and SparseAdam crash on an
    empty sparse gradient (torch 1.13), so the reference for that call is
    "no row and no state changes; the step count advances" (the table counts
    embed_update calls, as torch counts optimizer.step() calls).

Tolerance. Lookups without max_norm are bit-exact copies of the stored
rows, and EmbeddingBag maxima are bit-exact. Everything else is compared as
|embed - torch| <= RTOL * |torch| + ATOL with RTOL = 1e-6, ATOL = 1e-6 on
values of order 1 (weights start N(0, 1); states are of order 1 or below).
The two sides differ only by float32 roundings (2^-24 ~ 6e-8 relative each):
  - the order in which repeated ids' gradients are summed (embed: the order
    of the call; torch: its coalesce or its dense backward);
  - the max_norm scale: torch computes the norm with its own (vectorized)
    reduction order;
  - SGD and Adagrad only: torch applies param.add_(grad, alpha=-lr) as a
    fused multiply-add (one rounding: its axpy / vectorized kernels), the
    extension as w + (-lr) * g (two roundings), so ~11% of the elements of
    a single step differ by one ulp. SparseAdam adds with alpha = 1, so one
    Adam step without repeats or max_norm is bit-exact.
These differences are carried into later steps, most by SGD momentum (the
buffer sums up to 1 / (1 - momentum) = 10 past gradients). Measured over
all cases: at most 2.7e-7 (relative to 1 + |torch|) without momentum, 6e-7
with momentum 0.9 over 40 full-batch steps. 1e-6 covers that and still
catches any formula mistake (a wrong hyperparameter or step count is off
by 1e-4 or more within a few steps: changing eps by 10% or beta2 by 0.001,
or not counting a padding-only step, fails the suite).

EmbeddingBag sums: embed accumulates in double, torch in float32, so the
bound is the float32 summation error of torch: for a bag of n rows,
|err| <= n * 2^-24 * sum_i |w_i x_i|; the test uses
1e-6 * sum_i |w_i x_i| + 1e-7 (covers n <= 16), divided by n for means.
"""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import from_blob, one, to_blob

torch.set_num_threads(1)

RTOL = ATOL = 1e-6
N, D, STEPS = 24, 7, 40


# ------------------------------------------------------------------ helpers

def create(db, name="t", **opts):
    """CREATE the table with `opts`; return its weights W (N x D)."""
    opts = {"num_embeddings": N, "dim": D, "seed": 11, **opts}
    args = ", ".join(f"{k}={int(v) if isinstance(v, bool) else v}"
                     for k, v in opts.items())
    db.execute(f'CREATE VIRTUAL TABLE "{name}" USING embedding({args})')
    return table_weights(db, name)


def table_weights(db, name="t"):
    got = db.execute(f'SELECT id, vector FROM "{name}"').fetchall()
    assert [i for i, _ in got] == list(range(N))
    return np.stack([from_blob(v) for _, v in got])


def table_states(db, name="t"):
    """{id: state} of the rows that have one (every row for adagrad and
    adam, the rows with a momentum buffer for SGD)."""
    return {i: from_blob(s) for i, s in db.execute(
        f"SELECT id, embed_optimizer_state('{name}', id) AS s FROM \"{name}\" "
        "WHERE s IS NOT NULL")}


def table_step(db, name="t"):
    return int(one(db, f"SELECT value FROM \"{name}_config\" WHERE key = 'step'"))


def close(got, ref, what, rtol=RTOL, atol=ATOL):
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    assert got.shape == ref.shape, what
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol, err_msg=what)


def tensor_of(x):
    return x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


# ------------------------------------------------------------------ cases

# (id, table options, torch optimizer class, torch keyword arguments)
OPTIMIZERS = [
    ("sgd", {}, torch.optim.SGD, {}),
    ("sgd_maximize", {"maximize": True}, torch.optim.SGD, {"maximize": True}),
    ("adagrad", {"optimizer": "adagrad"}, torch.optim.Adagrad, {}),
    ("adagrad_hyper",
     {"optimizer": "adagrad", "lr_decay": 0.05,
      "initial_accumulator_value": 0.3, "eps": 1e-4, "maximize": True},
     torch.optim.Adagrad,
     {"lr_decay": 0.05, "initial_accumulator_value": 0.3, "eps": 1e-4,
      "maximize": True}),
    ("adam", {"optimizer": "adam"}, torch.optim.SparseAdam, {}),
    ("adam_hyper",
     {"optimizer": "adam", "betas": "(0.8, 0.95)", "eps": 1e-5,
      "maximize": True},
     torch.optim.SparseAdam,
     {"betas": (0.8, 0.95), "eps": 1e-5, "maximize": True}),
]

# Weights start N(0, 1) in D = 7: L2 norms ~2.6, L1 ~5.6, L3 ~2.2, so every
# max_norm below rescales most rows at first, and later steps move rows to
# either side of the bound.
MODIFIERS = [
    ("plain", {}),
    ("padding", {"padding_idx": 3}),
    ("max_norm_p1", {"max_norm": 2.5, "norm_type": 1.0}),
    ("max_norm_p2", {"max_norm": 1.0, "norm_type": 2.0}),
    ("max_norm_p3", {"max_norm": 0.8, "norm_type": 3.0}),
    ("padding_max_norm", {"padding_idx": 0, "max_norm": 1.2}),
    ("scale_grad_by_freq", {"scale_grad_by_freq": True}),
    ("scale_grad_by_freq_padding_max_norm",
     {"scale_grad_by_freq": True, "padding_idx": 5, "max_norm": 1.5,
      "norm_type": 3.0}),
]

CASES = [pytest.param(o, m, id=f"{o[0]}-{m[0]}")
         for o in OPTIMIZERS for m in MODIFIERS]


class Reference:
    """torch's side of a case: the Embedding, its optimizer and one step."""

    def __init__(self, W, opt_class, opt_kwargs, mods, dense=False):
        self.mods = mods
        self.pad = mods.get("padding_idx")
        self.sgbf = bool(mods.get("scale_grad_by_freq"))
        self.emb = torch.nn.Embedding.from_pretrained(
            torch.tensor(W), freeze=False, sparse=not (self.sgbf or dense),
            padding_idx=self.pad, max_norm=mods.get("max_norm"),
            norm_type=mods.get("norm_type", 2.0),
            scale_grad_by_freq=self.sgbf)
        self.weight = self.emb.weight
        self.opt_class, self.opt_kwargs = opt_class, opt_kwargs
        self.new_optimizer()

    def new_optimizer(self):
        self.opt = self.opt_class([self.weight], lr=0.1, **self.opt_kwargs)

    @property
    def state(self):
        return self.opt.state[self.weight]

    def forward(self, ids):
        return self.emb(torch.tensor(ids)).detach().numpy().copy()

    def step(self, ids, G, lr):
        """One step; the forward (with its in-place max_norm renorm) runs
        here, as in a training loop."""
        if self.pad is not None and set(ids) == {self.pad}:
            self.emb(torch.tensor(ids))             # renorm: nothing to do
            if "step" in self.state:                # see the module comment
                self.state["step"] += 1
            return
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad()
        (self.emb(torch.tensor(ids)) * torch.tensor(G)).sum().backward()
        if self.sgbf and self.opt_class is not torch.optim.SGD:
            rows = sorted(set(ids) - {self.pad})
            dense = self.weight.grad
            self.weight.grad = torch.sparse_coo_tensor(
                torch.tensor([rows]), dense[rows], dense.shape)
        self.opt.step()


def random_batch(rng, step, pad):
    n = int(rng.integers(1, 16))
    ids = [int(i) for i in rng.integers(0, N, n)]
    if step % 3 == 0:
        ids += [int(i) for i in rng.choice(ids, 1 + n // 2)]  # repeated ids
        rng.shuffle(ids)
    if pad is not None:
        if step == 17:
            ids = [pad, pad]                                  # padding only
        elif step % 4 == 1:
            for _ in range(2):
                ids.insert(int(rng.integers(0, len(ids) + 1)), pad)
    return ids


def embed_step(db, ids, G, lr, name="t"):
    return one(db, f"SELECT embed_update('{name}', ?, ?, ?)",
               json.dumps(ids), to_blob(G), lr)


def compare_forward(db, ref, ids, name="t"):
    """embed_lookup vs emb(ids). Without max_norm the lookup is a bit-exact
    copy of the stored rows (and of torch's rows before the first step;
    after it the weights of the two may differ by float32 roundings)."""
    got = from_blob(one(db, f"SELECT embed_lookup('{name}', ?)",
                        json.dumps(ids)), D)
    if ref.mods.get("max_norm") is None:
        assert np.array_equal(got, table_weights(db, name)[ids])
    close(got, ref.forward(ids), "lookup vs emb(ids)")


def run_steps(db, ref, rng, steps, lr_range=(0.01, 0.3), first=0):
    pad = ref.pad
    for step in range(first, first + steps):
        ids = random_batch(rng, step, pad)
        G = rng.standard_normal((len(ids), D)).astype(np.float32)
        lr = float(rng.uniform(*lr_range))
        compare_forward(db, ref, ids)
        changed = embed_step(db, ids, G, lr)
        ref.step(ids, G, lr)
        assert changed == len(set(ids) - {pad})
        close(table_weights(db), tensor_of(ref.weight), f"weights after step {step}")


def initial_state(opt_class, opt_kwargs):
    """A row's state before its first step (None: SGD's momentum buffer
    does not exist yet)."""
    if opt_class is torch.optim.SGD:
        return None
    if opt_class is torch.optim.Adagrad:
        return np.full(D, opt_kwargs.get("initial_accumulator_value", 0.0),
                       np.float32)
    return np.zeros(2 * D, np.float32)


def compare_state(db, ref, opt_kwargs, name="t"):
    """The t_state BLOBs (and the step count) against torch's state."""
    states = table_states(db, name)
    st = ref.state
    if ref.opt_class is torch.optim.SGD and not opt_kwargs.get("momentum"):
        assert states == {}
        return
    init = initial_state(ref.opt_class, opt_kwargs)
    if ref.opt_class is torch.optim.SGD:
        parts = [st["momentum_buffer"]]
    elif ref.opt_class is torch.optim.Adagrad:
        parts = [st["sum"]]
    else:
        parts = [st["exp_avg"], st["exp_avg_sq"]]
    want = np.concatenate([tensor_of(p) for p in parts], axis=1)
    for r in range(N):
        if r not in states:     # never stepped: the initial state
            assert init is not None, f"row {r} has no momentum buffer"
            got = init
        else:
            got = states[r]
        close(got, want[r], f"optimizer state of row {r}")
    if ref.pad is not None:
        assert ref.pad not in states or np.array_equal(
            states[ref.pad], init), "padding row has a state"
    if "step" in st:
        assert table_step(db, name) == int(st["step"])


# ------------------------------------------------------------------ sparse

@pytest.mark.parametrize("opt, mod", CASES)
def test_steps_equal_torch(db, rng, opt, mod):
    _, table_opts, opt_class, opt_kwargs = opt
    _, mods = mod
    W = create(db, **table_opts, **mods)
    ref = Reference(W, opt_class, opt_kwargs, mods)
    run_steps(db, ref, rng, STEPS)
    close(table_weights(db), tensor_of(ref.weight), "final weights")
    compare_state(db, ref, opt_kwargs)
    if ref.pad is not None:
        assert not table_weights(db)[ref.pad].any(), "padding row changed"


@pytest.mark.parametrize("opt", [pytest.param(o, id=o[0]) for o in OPTIMIZERS
                                 if o[0].startswith("adam")])
def test_adam_without_repeats_is_bit_exact(db, rng, opt):
    """SparseAdam's formulas are evaluated in torch's order, and its final
    add has alpha = 1 (no fused multiply-add on torch's side): with distinct
    ids in every batch (nothing to coalesce) and no max_norm, every weight
    and state element is bit-identical to torch's, step after step."""
    _, table_opts, opt_class, opt_kwargs = opt
    W = create(db, **table_opts, padding_idx=2)
    ref = Reference(W, opt_class, opt_kwargs, {"padding_idx": 2})
    for _ in range(20):
        ids = [int(i) for i in rng.permutation(N)[:int(rng.integers(1, N))]]
        G = rng.standard_normal((len(ids), D)).astype(np.float32)
        lr = float(rng.uniform(0.001, 0.1))
        embed_step(db, ids, G, lr)
        ref.step(ids, G, lr)
        assert np.array_equal(table_weights(db), tensor_of(ref.weight))
    states = table_states(db)
    m, v = tensor_of(ref.state["exp_avg"]), tensor_of(ref.state["exp_avg_sq"])
    for r, st in states.items():
        assert np.array_equal(st, np.concatenate([m[r], v[r]])), r


# ------------------------------------------------------------------ SGD with state

MOMENTUM = [
    ("momentum", {"momentum": 0.9}, {}),
    ("momentum_dampening", {"momentum": 0.9, "dampening": 0.3}, {}),
    ("nesterov", {"momentum": 0.9, "nesterov": True}, {}),
    ("weight_decay", {"weight_decay": 0.01}, {}),
    ("momentum_weight_decay_maximize",
     {"momentum": 0.8, "dampening": 0.1, "weight_decay": 0.02,
      "maximize": True}, {}),
    ("nesterov_weight_decay_max_norm",
     {"momentum": 0.5, "nesterov": True, "weight_decay": 0.05},
     {"max_norm": 1.0, "norm_type": 2.0}),
]


@pytest.mark.parametrize("hyper, mods", [pytest.param(h, m, id=i)
                                         for i, h, m in MOMENTUM])
def test_sgd_with_state_full_batch_equals_torch(db, rng, hyper, mods):
    W = create(db, optimizer="sgd", **hyper, **mods)
    emb = torch.nn.Embedding.from_pretrained(
        torch.tensor(W), freeze=False, sparse=False,
        max_norm=mods.get("max_norm"), norm_type=mods.get("norm_type", 2.0))
    opt = torch.optim.SGD(emb.parameters(), lr=0.1, **hyper)
    for step in range(STEPS):
        ids = [int(i) for i in rng.permutation(N)]            # every row
        ids += [int(i) for i in rng.integers(0, N, 5)]        # and repeats
        rng.shuffle(ids)
        G = rng.standard_normal((len(ids), D)).astype(np.float32)
        lr = float(rng.uniform(0.01, 0.1))
        got = from_blob(one(db, "SELECT embed_lookup('t', ?)", json.dumps(ids)), D)
        want = emb(torch.tensor(ids))
        close(got, want.detach().numpy(), f"lookup at step {step}")
        assert embed_step(db, ids, G, lr) == N
        opt.param_groups[0]["lr"] = lr
        opt.zero_grad()
        (want * torch.tensor(G)).sum().backward()
        opt.step()
        close(table_weights(db), tensor_of(emb.weight), f"weights after step {step}")
    states = table_states(db)
    if hyper.get("momentum"):
        buf = tensor_of(opt.state[emb.weight]["momentum_buffer"])
        close(np.stack([states[r] for r in range(N)]), buf, "momentum buffers")
    else:
        assert states == {}


# ------------------------------------------------------------------ reset

RESET_CASES = [
    pytest.param(o, id=o[0]) for o in OPTIMIZERS
    if not o[0].startswith("sgd")
] + [pytest.param(("sgd_momentum", {"momentum": 0.9, "nesterov": True},
                   torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
                  id="sgd_momentum")]


@pytest.mark.parametrize("opt", RESET_CASES)
def test_optimizer_reset_equals_a_new_torch_optimizer(db, rng, opt):
    """embed_optimizer_reset forgets every row's state and the step count:
    the next steps match a freshly constructed torch optimizer on the
    current weights."""
    name, table_opts, opt_class, opt_kwargs = opt
    momentum = "momentum" in opt_kwargs
    W = create(db, **table_opts)
    # momentum: full batches and a dense reference (see the module comment)
    ref = Reference(W, opt_class, opt_kwargs, {}, dense=momentum)

    stepped = set()

    def steps(k):
        for _ in range(k):
            ids = ([int(i) for i in rng.permutation(N)] if momentum else
                   [int(i) for i in rng.integers(0, N, 10)])
            stepped.update(ids)
            G = rng.standard_normal((len(ids), D)).astype(np.float32)
            lr = float(rng.uniform(0.01, 0.2))
            embed_step(db, ids, G, lr)
            ref.step(ids, G, lr)
        close(table_weights(db), tensor_of(ref.weight), "weights")

    steps(12)
    # the rows whose state a step changed: every row stepped
    assert one(db, "SELECT embed_optimizer_reset('t')") == len(stepped)
    init = initial_state(opt_class, opt_kwargs)
    if momentum:
        assert table_states(db) == {}
    else:
        assert all(np.array_equal(s, init) for s in table_states(db).values())
    assert table_step(db) == 0
    ref.new_optimizer()
    steps(12)
    compare_state(db, ref, opt_kwargs)


def test_reset_of_one_table_leaves_the_other(db, rng):
    create(db, "a", optimizer="adam")
    create(db, "b", optimizer="adam")
    G = rng.standard_normal((3, D)).astype(np.float32)
    for name in "ab":
        embed_step(db, [1, 2, 3], G, 0.1, name)
    one(db, "SELECT embed_optimizer_reset('a')")
    assert (table_step(db, "a"), table_step(db, "b")) == (0, 1)

    def moved(name):    # the rows whose state is not adam's initial zeros
        return sorted(i for i, s in table_states(db, name).items() if s.any())
    assert moved("a") == [] and moved("b") == [1, 2, 3]


# ------------------------------------------------------------------ rollback

def snapshot(db):
    return (table_weights(db).tobytes(),
            sorted((i, s.tobytes()) for i, s in table_states(db).items()),
            table_step(db))


ROLLBACK_CASES = [o for o in OPTIMIZERS if o[0] in ("adagrad_hyper", "adam")]


@pytest.mark.parametrize("opt", [pytest.param(o, id=o[0]) for o in ROLLBACK_CASES])
def test_rollback_restores_weights_state_and_step(file_db, rng, opt):
    """A transaction of embed_update calls (and a reset) that is rolled back
    leaves no trace: weights, state and step count are restored, and the
    following steps match torch that never saw the rolled-back ones (Adam's
    bias correction and Adagrad's lr_decay both read the step count)."""
    db = file_db
    _, table_opts, opt_class, opt_kwargs = opt
    W = create(db, **table_opts)
    ref = Reference(W, opt_class, opt_kwargs, {})

    def batch():
        ids = [int(i) for i in rng.integers(0, N, 12)]
        return ids, rng.standard_normal((12, D)).astype(np.float32), \
            float(rng.uniform(0.01, 0.2))

    for _ in range(5):                       # committed (autocommit) steps
        ids, G, lr = batch()
        embed_step(db, ids, G, lr)
        ref.step(ids, G, lr)
    before = snapshot(db)

    db.execute("BEGIN")
    for _ in range(3):
        embed_step(db, *batch())
    one(db, "SELECT embed_optimizer_reset('t')")
    embed_step(db, *batch())
    assert snapshot(db) != before
    db.execute("ROLLBACK")
    assert snapshot(db) == before

    # savepoints: only the work after the inner savepoint is undone
    db.execute("BEGIN")
    ids, G, lr = batch()
    embed_step(db, ids, G, lr)
    ref.step(ids, G, lr)
    db.execute("SAVEPOINT inner")
    embed_step(db, *batch())
    db.execute("ROLLBACK TO inner")
    db.execute("RELEASE inner")
    db.execute("COMMIT")

    for _ in range(5):
        ids, G, lr = batch()
        embed_step(db, ids, G, lr)
        ref.step(ids, G, lr)
    close(table_weights(db), tensor_of(ref.weight), "weights")
    compare_state(db, ref, opt_kwargs)
    assert table_step(db) == 11


# ------------------------------------------------------------------ EmbeddingBag

def make_bags(rng, n_bags=12, pad=None):
    """Bags of 0..8 ids (bag 4 is empty), in the offsets form and as rows
    bag, pos, token_id, weight of an SQL table."""
    sizes = [int(s) for s in rng.integers(1, 9, n_bags)]
    sizes[4] = 0
    ids = [int(i) for i in rng.integers(0, N, sum(sizes))]
    if pad is not None:
        ids[1] = ids[-1] = pad
    weights = rng.uniform(-2, 2, len(ids)).astype(np.float32)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    bag_of = np.repeat(np.arange(n_bags), sizes)
    rows = [(int(b), p, i, float(w)) for p, (b, i, w) in
            enumerate(zip(bag_of, ids, weights))]
    return ids, offsets, weights, rows, n_bags


def sql_bags(db, rows, n_bags):
    db.execute("CREATE TEMP TABLE bag_ids(bag INTEGER PRIMARY KEY)")
    db.executemany("INSERT INTO bag_ids VALUES (?)", [(b,) for b in range(n_bags)])
    db.execute("CREATE TEMP TABLE items(bag INTEGER, pos INTEGER PRIMARY KEY, "
               "token_id INTEGER, w REAL)")
    db.executemany("INSERT INTO items(bag, pos, token_id, w) VALUES (?, ?, ?, ?)",
                   rows)


def bag_query(db, expr, where=""):
    """One vector per bag, in bag order; an empty bag gives zeros, as torch
    does (embed's aggregates give NULL over no rows, hence coalesce)."""
    sql = (f"SELECT g.bag, coalesce({expr}, zeroblob(4 * {D})) "
           f"FROM bag_ids g LEFT JOIN items b ON b.bag = g.bag {where} "
           f"LEFT JOIN t e ON e.id = b.token_id "
           f"GROUP BY g.bag ORDER BY g.bag")
    got = db.execute(sql).fetchall()
    return np.stack([from_blob(v) for _, v in got])


def sum_bound(W, ids, offsets, weights, n_bags, per_row_div=False):
    """float32 summation error bound of torch's bag sums (module comment)."""
    absw = np.abs(weights)[:, None] * np.abs(W[ids])
    bounds = np.add.reduceat(absw, offsets, axis=0) if len(ids) else absw
    sizes = np.diff(np.append(offsets, len(ids)))
    bounds[sizes == 0] = 0                       # reduceat quirk on empty bags
    bounds = 1e-6 * bounds + 1e-7
    if per_row_div:
        bounds /= np.maximum(sizes, 1)[:, None]
    return bounds


def assert_within(got, want, bound, what):
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    assert (err <= bound).all(), f"{what}: max error {err.max():.3g}"


def test_embedding_bag_modes_equal_torch(db, rng):
    W = create(db)
    ids, offsets, weights, rows, n_bags = make_bags(rng)
    sql_bags(db, rows, n_bags)
    Wt, it, ot = torch.tensor(W), torch.tensor(ids), torch.tensor(offsets)
    wt = torch.tensor(weights)

    ref = F.embedding_bag(it, Wt, ot, mode="sum").numpy()
    assert_within(bag_query(db, "embed_sum(e.vector)"), ref,
                  sum_bound(W, ids, offsets, np.ones_like(weights), n_bags), "sum")

    ref = F.embedding_bag(it, Wt, ot, mode="sum", per_sample_weights=wt).numpy()
    assert_within(bag_query(db, "embed_sum(e.vector, b.w)"), ref,
                  sum_bound(W, ids, offsets, weights, n_bags), "weighted sum")

    ref = F.embedding_bag(it, Wt, ot, mode="mean").numpy()
    assert_within(bag_query(db, "embed_mean(e.vector)"), ref,
                  sum_bound(W, ids, offsets, np.ones_like(weights), n_bags,
                            per_row_div=True), "mean")

    ref = F.embedding_bag(it, Wt, ot, mode="max").numpy()
    assert np.array_equal(bag_query(db, "embed_max(e.vector)"), ref), "max"


def test_embedding_bag_with_padding_and_max_norm_equals_torch(db, rng):
    """padding_idx entries do not count in a bag (torch's embedding_bag
    padding_idx): in SQL, a filter on the join; max_norm: the bag of the
    renormed rows, i.e. of embed_lookup's results."""
    pad = 2
    W = create(db, padding_idx=pad, max_norm=1.5)
    ids, offsets, weights, rows, n_bags = make_bags(rng, pad=pad)
    sql_bags(db, rows, n_bags)
    it, ot = torch.tensor(ids), torch.tensor(offsets)
    keep = np.array([i != pad for i in ids], np.float32)
    looked = "embed_lookup('t', b.token_id)"
    for mode, expr in [("sum", f"embed_sum({looked})"),
                       ("mean", f"embed_mean({looked})"),
                       ("max", f"embed_max({looked})")]:
        Wt = torch.tensor(W)            # embedding_bag renorms it in place
        ref = F.embedding_bag(it, Wt, ot, mode=mode, padding_idx=pad,
                              max_norm=1.5).numpy()
        got = bag_query(db, expr, where=f"AND b.token_id IS NOT {pad}")
        bound = sum_bound(np.clip(np.abs(W), 0, 1.5), ids, offsets, keep,
                          n_bags, per_row_div=(mode == "mean")) + 1e-6
        assert_within(got, ref, bound, mode)
