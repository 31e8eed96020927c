"""Helpers shared by the benchmark scripts in bench/."""
import json
import os
import platform
import shutil
import statistics
import subprocess
import tarfile

import numpy as np


# A training step as the README teaches it first: the table's `step`
# command, a write statement doing what embed_update('t', ids, grads, lr)
# does. SELECT_STEP_SQL is that function's form, which costs the same
# (bench_train_mem.py --form select measures it).
STEP_SQL = "INSERT INTO t(t, id, vector, lr) VALUES ('step', ?, ?, ?)"
SELECT_STEP_SQL = "SELECT embed_update('t', ?, ?, ?)"


def training_batches(n, rows, batch, dim):
    """n batches for the training benches, the same in every one: `batch`
    ids drawn uniformly from 0..rows-1 (numpy default_rng(0), so a few
    repeats per batch) and a batch x dim float32 gradient, as numpy
    arrays (ids, G)."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        ids = rng.integers(0, rows, batch)
        G = rng.standard_normal((batch, dim), dtype=np.float32)
        out.append((ids, G))
    return out


def cpu_model():
    """The CPU's model name, for the header of every benchmark's output."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def log(msg=""):
    print(msg, flush=True)


def summary(xs):
    """(median, min, max) of a list of numbers."""
    xs = sorted(xs)
    return statistics.median(xs), xs[0], xs[-1]


def rss_kib():
    """(VmRSS, VmHWM) of this process in KiB."""
    vals = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, v = line.split(":", 1)
                vals[key] = int(v.split()[0])
    return vals.get("VmRSS", 0), vals.get("VmHWM", 0)


def fetch_npm_extension(spec, member, dest):
    """A SQLite extension shipped in an npm package: `npm pack spec` into
    dest, then member (a .so inside the tarball) extracted there. Returns
    its path without the suffix, or None with the reason printed."""
    so = os.path.join(dest, member)
    if os.path.exists(so):
        return so[:-3]
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        log(f"  {spec}: needs Linux x86-64; skipped")
        return None
    npm = shutil.which("npm")
    if not npm:
        log(f"  {spec}: npm not found; skipped")
        return None
    os.makedirs(dest, exist_ok=True)
    r = subprocess.run([npm, "pack", "--json", spec], cwd=dest,
                       capture_output=True, text=True)
    try:
        tgz = os.path.join(dest, json.loads(r.stdout)[0]["filename"])
    except (ValueError, LookupError):
        tgz = None
    if r.returncode != 0 or not tgz or not os.path.exists(tgz):
        log(f"  {spec}: `npm pack` failed; skipped\n{r.stderr.strip()}")
        return None
    with tarfile.open(tgz) as tar:
        tar.extract(tar.getmember(member), dest)
    return so[:-3] if os.path.exists(so) else None


# ------------------------------------------- clustered embedding-like data
def mixture(n, nq, dim=384, centres=2048, seed=42, spread=1.0,
            noise=0.75, chunk=50_000):
    """(vectors, queries, labels, query labels): a Gaussian mixture that
    looks like text embeddings more than i.i.d. noise does. Centres have
    random sizes (lognormal weights); dimension j has standard deviation
    1 / sqrt(1 + j / 32) (a decaying spectrum), the centres drawn with
    `spread` times it and the points around them with `noise` times it;
    every vector is L2-normalised, float32. The queries are nq fresh draws
    from the same mixture. With spread / noise = 1 / 0.75, most but not all
    of a point's 10 nearest neighbours share its centre, at cosine distance
    about 0.3 against about 1.0 for a random pair (as text embeddings
    are); at spread / noise well under 1 the neighbours become nearly
    equidistant, as in i.i.d. data, and recall stops meaning much."""
    rng = np.random.default_rng(seed)
    scale = (1.0 / np.sqrt(1.0 + np.arange(dim) / 32.0)).astype(np.float32)
    weights = rng.lognormal(0.0, 1.0, centres)
    weights /= weights.sum()
    centre = (rng.standard_normal((centres, dim), dtype=np.float32) *
              (spread * scale))

    def draw(count):
        labels = rng.choice(centres, size=count, p=weights)
        out = np.empty((count, dim), dtype=np.float32)
        for s in range(0, count, chunk):
            lab = labels[s:s + chunk]
            x = rng.standard_normal((len(lab), dim), dtype=np.float32)
            x *= noise * scale
            x += centre[lab]
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            out[s:s + chunk] = x
        return out, labels

    vectors, labels = draw(n)
    queries, qlabels = draw(nq)
    return vectors, queries, labels, qlabels


def exact_topk(vectors, queries, k=10, chunk=100_000):
    """Exact top-k ids per query, float64 cosine, ties by the smaller id:
    an (nq, k) int64 array. Chunked over the rows, so memory stays at
    chunk x nq doubles whatever the table's size."""
    q64 = queries.astype(np.float64)
    q64 /= np.maximum(np.linalg.norm(q64, axis=1), 1e-300)[:, None]
    best_s = np.full((len(queries), 0), -np.inf)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for s in range(0, len(vectors), chunk):
        v64 = vectors[s:s + chunk].astype(np.float64)
        vn = np.maximum(np.linalg.norm(v64, axis=1), 1e-300)
        sc = (q64 @ v64.T) / vn[None, :]
        kk = min(k, sc.shape[1])
        part = np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
        best_s = np.concatenate([best_s, np.take_along_axis(sc, part, 1)], 1)
        best_i = np.concatenate([best_i, part + s], 1)
        order = np.lexsort((best_i, -best_s), axis=1)[:, :k]
        best_s = np.take_along_axis(best_s, order, 1)
        best_i = np.take_along_axis(best_i, order, 1)
    return best_i
