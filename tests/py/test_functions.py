"""The pure functions and the EmbeddingBag aggregates (README: Functions), on
random data, against float64 references from numpy and PyTorch.

Tolerances: the README (Pure functions) promises results within 1e-5
relative of a float64 reference. Reductions (dot, norm, l2, cosine) are
compared with rtol=1e-5 plus, for dot products whose exact value may cancel to near zero,
an absolute slack of 1e-5 * sum|a_i * b_i| (the scale of the terms). Element-wise
results (add, sub, scale, normalize) and the aggregates are compared per
element with rtol=1e-5 and an absolute slack of 1e-6 times the largest
magnitude involved. embed_max and BLOB/JSON conversions must be exact.
"""
import json
import math
import os
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import ROOT, from_blob, one, to_blob

torch.set_num_threads(1)

DIMS = [1, 2, 3, 17, 256, 4096]


def randvec(rng, dim, scale=1.0):
    return (rng.standard_normal(dim) * scale).astype(np.float32)


def t64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


# ---------------------------------------------------------------- version


def test_version_matches_header(db):
    header = open(os.path.join(ROOT, "ext", "embed.h")).read()
    version = re.search(r'#define EMBED_VERSION "([^"]+)"', header).group(1)
    assert one(db, "SELECT embed_version()") == version
    assert one(db, "SELECT typeof(embed_version())") == "text"


# ------------------------------------------------------------- reductions


@pytest.mark.parametrize("dim", DIMS)
def test_cosine_matches_torch(db, rng, dim):
    for scale in (1e-3, 1.0, 1e3):
        a, b = randvec(rng, dim, scale), randvec(rng, dim)
        got = one(db, "SELECT embed_cosine(?, ?)", to_blob(a), to_blob(b))
        ref = F.cosine_similarity(t64(a), t64(b), dim=0, eps=1e-8).item()
        assert isinstance(got, float)
        assert got == pytest.approx(ref, rel=1e-5, abs=1e-7)
        assert -1.0 <= got <= 1.0


def test_cosine_of_parallel_and_opposite_vectors_is_clamped(db, rng):
    a = randvec(rng, 300)
    assert one(db, "SELECT embed_cosine(?, ?)", to_blob(a), to_blob(a)) == \
        pytest.approx(1.0, abs=1e-7)
    same = one(db, "SELECT embed_cosine(?, ?)", to_blob(a), to_blob(a * 4))
    opposite = one(db, "SELECT embed_cosine(?, ?)", to_blob(a), to_blob(-a))
    assert 1.0 - 1e-7 <= same <= 1.0
    assert -1.0 <= opposite <= -1.0 + 1e-7


@pytest.mark.parametrize("dim", [1, 5, 64])
def test_cosine_with_zero_vector_is_zero_like_torch(db, rng, dim):
    z = np.zeros(dim, np.float32)
    b = randvec(rng, dim)
    for x, y in [(z, b), (b, z), (z, z)]:
        got = one(db, "SELECT embed_cosine(?, ?)", to_blob(x), to_blob(y))
        ref = F.cosine_similarity(t64(x), t64(y), dim=0, eps=1e-8).item()
        assert ref == 0.0
        assert got == 0.0


def test_cosine_of_tiny_vectors_uses_torch_eps(db, rng):
    # norms below eps=1e-8 are clamped to eps, so tiny vectors do not give 1
    a = np.full(4, 1e-10, np.float32)
    b = randvec(rng, 4)
    for x, y in [(a, b), (a, a)]:
        got = one(db, "SELECT embed_cosine(?, ?)", to_blob(x), to_blob(y))
        ref = F.cosine_similarity(t64(x), t64(y), dim=0, eps=1e-8).item()
        assert got == pytest.approx(ref, rel=1e-5, abs=1e-12)


@pytest.mark.parametrize("dim", DIMS)
def test_dot_norm_l2_match_float64(db, rng, dim):
    for scale in (1e-3, 1.0, 1e4):
        a, b = randvec(rng, dim, scale), randvec(rng, dim)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        dot = one(db, "SELECT embed_dot(?, ?)", to_blob(a), to_blob(b))
        assert dot == pytest.approx(float(a64 @ b64), rel=1e-5,
                                    abs=1e-5 * float(np.abs(a64 * b64).sum()))
        norm = one(db, "SELECT embed_norm(?)", to_blob(a))
        assert norm == pytest.approx(float(np.linalg.norm(a64)), rel=1e-5)
        l2 = one(db, "SELECT embed_l2(?, ?)", to_blob(a), to_blob(b))
        assert l2 == pytest.approx(float(np.linalg.norm(a64 - b64)), rel=1e-5)
        assert isinstance(dot, float) and isinstance(norm, float) \
            and isinstance(l2, float)


def test_reductions_of_known_values(db):
    assert one(db, "SELECT embed_norm('[3, 4]')") == 5.0
    assert one(db, "SELECT embed_dot('[1, 2, 3]', '[4, -5, 6]')") == 12.0
    assert one(db, "SELECT embed_l2('[1, 1]', '[4, 5]')") == 5.0
    assert one(db, "SELECT embed_l2(?, ?)", to_blob([7, 7]), to_blob([7, 7])) == 0.0
    assert one(db, "SELECT embed_norm('[0, 0, 0]')") == 0.0


def test_extreme_but_finite_inputs_do_not_overflow_reductions(db):
    big = np.array([3e38, -3e38, 3e38], np.float32)
    ref = float(np.linalg.norm(big.astype(np.float64)))
    assert one(db, "SELECT embed_norm(?)", to_blob(big)) == pytest.approx(ref, rel=1e-5)
    assert one(db, "SELECT embed_l2(?, ?)", to_blob(big), to_blob(-big)) == \
        pytest.approx(2 * ref, rel=1e-5)
    assert one(db, "SELECT embed_cosine(?, ?)", to_blob(big), to_blob(big)) == \
        pytest.approx(1.0, abs=1e-7)


# ------------------------------------------------------------ element-wise


def assert_vec_close(got, ref, rtol=1e-5):
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape
    atol = 1e-6 * max(1e-30, float(np.abs(ref).max()))
    np.testing.assert_allclose(got.astype(np.float64), ref, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dim", DIMS)
def test_add_sub_scale_match_float64(db, rng, dim):
    a, b = randvec(rng, dim, 10.0), randvec(rng, dim)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    add = one(db, "SELECT embed_add(?, ?)", to_blob(a), to_blob(b))
    sub = one(db, "SELECT embed_sub(?, ?)", to_blob(a), to_blob(b))
    assert isinstance(add, bytes) and isinstance(sub, bytes)
    assert_vec_close(from_blob(add), a64 + b64)
    assert_vec_close(from_blob(sub), a64 - b64)
    for s in (0.5, -3.25, 1e-3, 7, 0):
        got = from_blob(one(db, "SELECT embed_scale(?, ?)", to_blob(a), s))
        assert_vec_close(got, a64 * s)


@pytest.mark.parametrize("dim", DIMS)
def test_normalize_matches_torch(db, rng, dim):
    for scale in (1e-4, 1.0, 1e4):
        a = randvec(rng, dim, scale)
        got = from_blob(one(db, "SELECT embed_normalize(?)", to_blob(a)))
        ref = F.normalize(t64(a), dim=0).numpy()
        assert_vec_close(got, ref)
        assert float(np.linalg.norm(got.astype(np.float64))) == \
            pytest.approx(1.0, rel=1e-5)


def test_normalize_of_zero_vector_stays_zero(db):
    got = from_blob(one(db, "SELECT embed_normalize(?)", to_blob(np.zeros(5))))
    ref = F.normalize(torch.zeros(5, dtype=torch.float64), dim=0).numpy()
    assert np.array_equal(got, ref) and np.array_equal(got, np.zeros(5))


def test_element_wise_known_values(db):
    def js(sql, *p):
        return json.loads(one(db, f"SELECT embed_json({sql})", *p))
    assert js("embed_add('[1, 2]', '[0.5, -4]')") == [1.5, -2]
    assert js("embed_sub('[1, 2]', '[0.5, -4]')") == [0.5, 6]
    assert js("embed_scale('[1, -2]', 3)") == [3, -6]
    assert js("embed_scale('[1, -2]', 0.5)") == [0.5, -1]
    assert js("embed_normalize('[3, 4]')") == [0.6, 0.8]


# ------------------------------------------------------ dim, vector, json


@pytest.mark.parametrize("dim", [1, 2, 300, 65536])
def test_dim_of_blob_and_json(db, rng, dim):
    v = randvec(rng, dim)
    assert one(db, "SELECT embed_dim(?)", to_blob(v)) == dim
    text = "[" + ",".join(repr(float(x)) for x in v) + "]"
    assert one(db, "SELECT embed_dim(?)", text) == dim
    assert one(db, "SELECT typeof(embed_dim(?))", to_blob(v)) == "integer"


def test_vector_returns_blob_unchanged(db, rng):
    for dim in (1, 7, 1000):
        v = randvec(rng, dim)
        got = one(db, "SELECT embed_vector(?)", to_blob(v))
        assert isinstance(got, bytes) and got == to_blob(v)


def test_vector_converts_json_like_numpy(db):
    text = "[0.5, -1, 2e-3, 1E2, -0, 0.1, 3.4028235e38, 1e-45, 123456789]"
    got = one(db, "SELECT embed_vector(?)", text)
    ref = np.array([0.5, -1, 2e-3, 1e2, -0.0, 0.1, 3.4028235e38, 1e-45,
                    123456789], dtype=np.float32)
    assert got == to_blob(ref)
    # JSON white space around tokens is allowed
    assert one(db, "SELECT embed_vector(?)", " \n[ 1 ,\t2 ]\r ") == to_blob([1, 2])


def special_floats():
    bits = [0x00000000, 0x80000000,              # +0, -0
            0x00000001, 0x80000001,              # smallest denormals
            0x007FFFFF, 0x807FFFFF,              # largest denormals
            0x00400000, 0x00012345,              # more denormals
            0x00800000, 0x80800000,              # smallest normals
            0x7F7FFFFF, 0xFF7FFFFF,              # largest finite
            0x3F800000, 0x3F800001, 0x3F7FFFFF,  # 1 and its neighbours
            0x3DCCCCCD, 0x3EAAAAAB, 0x4B800001]  # 0.1, 1/3, 2^24 + 2
    return np.array(bits, dtype=np.uint32).view(np.float32)


def random_finite_floats(rng, n):
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    v = bits.view(np.float32)
    return v[np.isfinite(v)]


def test_json_round_trip_is_bit_exact(db, rng):
    v = np.concatenate([special_floats(), random_finite_floats(rng, 60000)])
    text = one(db, "SELECT embed_json(?)", to_blob(v))
    assert isinstance(text, str)
    # the extension reads its own output back to the same bits
    assert one(db, "SELECT embed_vector(embed_json(?))", to_blob(v)) == to_blob(v)
    # and the text is a JSON array that any reader parses to the same floats
    parsed = json.loads(text, parse_int=float)
    assert isinstance(parsed, list) and len(parsed) == len(v)
    back = np.array(parsed, dtype=np.float64).astype(np.float32)
    assert np.array_equal(back.view(np.uint32), v.view(np.uint32))


def test_json_round_trip_of_normal_values(db, rng):
    for dim in (1, 3, 50):
        v = randvec(rng, dim)
        text = one(db, "SELECT embed_json(?)", to_blob(v))
        assert one(db, "SELECT embed_vector(?)", text) == to_blob(v)
        assert np.array_equal(np.array(json.loads(text), np.float32), v)


def test_json_text_is_plain(db):
    # no spaces, no exponent where plain digits read back exactly
    assert one(db, "SELECT embed_json('[0.5, -1, 2, 0.25]')") == "[0.5,-1,2,0.25]"
    assert one(db, "SELECT embed_json(?)", to_blob([0.1, 0])) == "[0.1,0]"


# ---------------------------------------------- JSON input, NULL in/out

BINARY = ["embed_dot", "embed_cosine", "embed_l2", "embed_add", "embed_sub"]
UNARY = ["embed_vector", "embed_json", "embed_dim", "embed_norm",
         "embed_normalize"]


def test_json_accepted_wherever_a_vector_is_taken(db, rng):
    a, b = randvec(rng, 9), randvec(rng, 9)
    ja = one(db, "SELECT embed_json(?)", to_blob(a))
    jb = one(db, "SELECT embed_json(?)", to_blob(b))
    for fn in UNARY:
        assert one(db, f"SELECT {fn}(?)", ja) == one(db, f"SELECT {fn}(?)", to_blob(a)), fn
    for fn in BINARY:
        ref = one(db, f"SELECT {fn}(?, ?)", to_blob(a), to_blob(b))
        assert one(db, f"SELECT {fn}(?, ?)", ja, jb) == ref, fn
        assert one(db, f"SELECT {fn}(?, ?)", ja, to_blob(b)) == ref, fn
        assert one(db, f"SELECT {fn}(?, ?)", to_blob(a), jb) == ref, fn
    assert one(db, "SELECT embed_scale(?, 2.5)", ja) == \
        one(db, "SELECT embed_scale(?, 2.5)", to_blob(a))
    for agg in ["embed_sum(v)", "embed_mean(v)", "embed_max(v)", "embed_sum(v, 2)"]:
        sql = f"SELECT {agg} FROM (SELECT ? AS v UNION ALL SELECT ?)"
        assert one(db, sql, ja, jb) == one(db, sql, to_blob(a), to_blob(b)), agg


def test_null_in_gives_null_out(db):
    v = to_blob([1, 2, 3])
    for fn in UNARY:
        assert one(db, f"SELECT {fn}(NULL)") is None, fn
    for fn in BINARY:
        assert one(db, f"SELECT {fn}(NULL, ?)", v) is None, fn
        assert one(db, f"SELECT {fn}(?, NULL)", v) is None, fn
        assert one(db, f"SELECT {fn}(NULL, NULL)") is None, fn
    assert one(db, "SELECT embed_scale(NULL, 2)") is None
    assert one(db, "SELECT embed_scale(?, NULL)", v) is None


def test_integer_scale_and_real_scale_agree(db, rng):
    a = randvec(rng, 6)
    assert one(db, "SELECT embed_scale(?, 3)", to_blob(a)) == \
        one(db, "SELECT embed_scale(?, 3.0)", to_blob(a))


# ------------------------------------------------------------- aggregates


@pytest.fixture
def bags(db, rng):
    """A weight table w(id, v), and bags(bag, pos, id, wt) of random bags
    (repeated ids included); returns (W, indices, offsets, weights)."""
    n, dim = 40, 11
    W = rng.standard_normal((n, dim)).astype(np.float32)
    db.execute("CREATE TABLE w(id INTEGER PRIMARY KEY, v BLOB)")
    db.executemany("INSERT INTO w VALUES (?, ?)",
                   [(i, to_blob(W[i])) for i in range(n)])
    db.execute("CREATE TABLE bags(bag, pos, id, wt)")
    idx, offsets, psw, data = [], [], [], []
    for b in range(25):
        offsets.append(len(idx))
        for p in range(int(rng.integers(1, 9))):
            i = int(rng.integers(0, 12 if b % 2 else n))  # odd bags repeat
            wt = float(rng.uniform(-2, 2))
            data.append((b, p, i, wt))
            idx.append(i)
            psw.append(wt)
    db.executemany("INSERT INTO bags VALUES (?, ?, ?, ?)", data)
    return W, idx, offsets, psw


def bag_results(db, agg):
    got = db.execute(f"SELECT bags.bag, {agg} FROM bags JOIN w ON w.id = bags.id "
                     "GROUP BY bags.bag ORDER BY bags.bag").fetchall()
    assert [b for b, _ in got] == list(range(25))
    return np.stack([from_blob(v) for _, v in got])


@pytest.mark.parametrize("mode,agg", [("sum", "embed_sum(w.v)"),
                                      ("mean", "embed_mean(w.v)"),
                                      ("max", "embed_max(w.v)")])
def test_aggregates_match_embedding_bag(db, bags, mode, agg):
    W, idx, offsets, _ = bags
    got = bag_results(db, agg)
    ref = F.embedding_bag(torch.tensor(idx), t64(W), torch.tensor(offsets),
                          mode=mode).numpy()
    if mode == "max":
        assert np.array_equal(got, ref.astype(np.float32))
    else:
        for g, r in zip(got, ref):
            assert_vec_close(g, r)


def test_weighted_sum_matches_embedding_bag_per_sample_weights(db, bags):
    W, idx, offsets, psw = bags
    got = bag_results(db, "embed_sum(w.v, bags.wt)")
    ref = F.embedding_bag(torch.tensor(idx), t64(W), torch.tensor(offsets),
                          mode="sum", per_sample_weights=t64(psw)).numpy()
    for g, r in zip(got, ref):
        assert_vec_close(g, r)


def test_weighted_sum_with_unit_weights_equals_sum(db, bags):
    assert np.array_equal(bag_results(db, "embed_sum(w.v, 1)"),
                          bag_results(db, "embed_sum(w.v)"))


def test_aggregate_of_a_single_row_is_that_row(db, rng):
    v = randvec(rng, 8)
    for agg in ("embed_sum(v)", "embed_mean(v)", "embed_max(v)"):
        assert one(db, f"SELECT {agg} FROM (SELECT ? AS v)", to_blob(v)) == to_blob(v)


def test_aggregates_over_empty_group_give_null(db):
    db.execute("CREATE TABLE e(g, v)")
    for agg in ("embed_sum(v)", "embed_mean(v)", "embed_max(v)", "embed_sum(v, 2)"):
        assert one(db, f"SELECT {agg} FROM e") is None, agg
    # a group whose rows are all NULL is empty too
    db.execute("INSERT INTO e VALUES (1, NULL), (1, NULL)")
    for agg in ("embed_sum(v)", "embed_mean(v)", "embed_max(v)", "embed_sum(v, 2)"):
        assert db.execute(f"SELECT g, {agg} FROM e GROUP BY g").fetchall() == [(1, None)], agg


def test_aggregates_skip_null_rows(db):
    sql = ("SELECT {} FROM (SELECT '[1, 2]' AS v UNION ALL SELECT NULL "
           "UNION ALL SELECT '[3, -4]')")
    assert one(db, "SELECT embed_json(({}))".format(sql.format("embed_mean(v)"))) == "[2,-1]"
    assert one(db, "SELECT embed_json(({}))".format(sql.format("embed_sum(v)"))) == "[4,-2]"
    assert one(db, "SELECT embed_json(({}))".format(sql.format("embed_max(v)"))) == "[3,2]"


def test_max_of_negative_values(db):
    # the running maximum must not start at 0
    sql = "SELECT embed_json(embed_max(v)) FROM (SELECT '[-5, -1]' AS v UNION ALL SELECT '[-2, -3]')"
    assert one(db, sql) == "[-2,-1]"


@pytest.mark.parametrize("agg", ["embed_sum", "embed_mean", "embed_max"])
def test_dimension_change_inside_a_group_is_an_error(db, agg):
    db.execute("CREATE TABLE m(g, v)")
    db.executemany("INSERT INTO m VALUES (?, ?)",
                   [(1, "[1, 2]"), (2, "[1, 2, 3]"), (2, "[4, 5, 6]"),
                    (3, "[1, 2, 3]"), (3, to_blob([1, 2]))])
    with pytest.raises(Exception) as info:
        db.execute(f"SELECT g, {agg}(v) FROM m GROUP BY g").fetchall()
    assert str(info.value) == f"{agg}: dimension mismatch (3 vs 2)"
    # groups that are each consistent are fine
    got = db.execute(f"SELECT g, embed_dim({agg}(v)) FROM m WHERE g < 3 "
                     "GROUP BY g").fetchall()
    assert got == [(1, 2), (2, 3)]


def test_groups_are_independent(db):
    db.execute("CREATE TABLE m(g, v)")
    db.executemany("INSERT INTO m VALUES (?, ?)",
                   [(1, "[1, 2]"), (1, "[3, 4]"), (2, "[10, 20, 30]")])
    got = db.execute("SELECT g, embed_json(embed_mean(v)) FROM m GROUP BY g").fetchall()
    assert got == [(1, "[2,3]"), (2, "[10,20,30]")]


# ------------------------- helpers for training in SQL (README: Functions)
# embed_sigmoid, embed_log_sigmoid (torch.sigmoid, F.logsigmoid on a number)
# and embed_stack (torch.stack of a group's vectors), from ext/sql/functions.c.


def test_sigmoid_and_log_sigmoid_match_torch(db, rng):
    xs = list(rng.standard_normal(50) * 10) + [0.0, -0.0, 1e-300, 30.0, -30.0,
                                                 700.0, -700.0, 800.0, -800.0, 1e300, -1e300]
    for x in xs:
        s = one(db, "SELECT embed_sigmoid(?)", x)
        ls = one(db, "SELECT embed_log_sigmoid(?)", x)
        t = torch.tensor(x, dtype=torch.float64)
        assert s == pytest.approx(torch.sigmoid(t).item(), rel=1e-12, abs=1e-300)
        assert ls == pytest.approx(F.logsigmoid(t).item(), rel=1e-12, abs=1e-300)
        assert math.isfinite(ls) and 0.0 <= s <= 1.0
    assert one(db, "SELECT embed_sigmoid(NULL)") is None
    assert one(db, "SELECT embed_log_sigmoid(NULL)") is None
    assert one(db, "SELECT embed_sigmoid(2)") == pytest.approx(1 / (1 + math.exp(-2)))


def test_stack_matches_torch_stack(db, rng):
    V = rng.standard_normal((7, 5)).astype(np.float32)
    db.execute("CREATE TABLE g(pos INTEGER PRIMARY KEY, v)")
    db.executemany("INSERT INTO g VALUES (?, ?)", [(i, to_blob(V[i])) for i in range(7)])
    got = one(db, "SELECT embed_stack(v) FROM (SELECT v FROM g ORDER BY pos DESC)")
    ref = torch.stack([torch.from_numpy(V[i]) for i in reversed(range(7))]).numpy()
    assert got == to_blob(ref)
    assert one(db, "SELECT embed_stack(v) FROM g WHERE pos < 0") is None
    with pytest.raises(Exception) as info:
        db.execute("SELECT embed_stack(v) FROM (SELECT '[1, 2]' AS v UNION ALL SELECT '[1, 2, 3]')").fetchall()
    assert str(info.value) == "embed_stack: dimension mismatch (2 vs 3)"
