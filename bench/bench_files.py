"""bench_files.py: how fast embed_file imports word2vec files, next to gensim.

Generates (once, in the git-ignored bench/.data/) a 100,000 x 300 word2vec
text file and its binary twin with gensim's KeyedVectors.save_word2vec_format,
then in one run times

    SELECT count(*), sum(length(vector)) FROM embed_file(:path)

(every entry parsed, checked and returned as a BLOB) against gensim's
KeyedVectors.load_word2vec_format on the same files, and prints MB/s and the
ratios. Best of --repeat runs for each (the files are read once beforehand so
both start from the page cache).

    python3 bench/bench_files.py [--rows N] [--dim D] [--repeat R]
"""
import argparse
import os
import sqlite3
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXT = os.environ.get("EMBED_EXT") or os.path.join(ROOT, "embed")
DATA = os.path.join(HERE, ".data")


def make_files(rows, dim):
    from gensim.models import KeyedVectors
    os.makedirs(DATA, exist_ok=True)
    text = os.path.join(DATA, f"w2v_{rows}x{dim}.txt")
    binary = os.path.join(DATA, f"w2v_{rows}x{dim}.bin")
    if not (os.path.exists(text) and os.path.exists(binary)):
        print(f"generating {rows} x {dim} word2vec files with gensim ...",
              flush=True)
        rng = np.random.default_rng(0)
        kv = KeyedVectors(dim)
        kv.add_vectors([f"w{i}" for i in range(rows)],
                       rng.standard_normal((rows, dim)).astype(np.float32)
                       * np.float32(0.1))
        for path, is_binary in ((text, False), (binary, True)):
            kv.save_word2vec_format(path + ".tmp", binary=is_binary)
            os.replace(path + ".tmp", path)
    return text, binary


def warm(path):
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def best_of(repeat, fn):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import logging
    logging.disable(logging.INFO)  # gensim's progress lines
    from gensim.models import KeyedVectors

    text, binary = make_files(args.rows, args.dim)
    db = sqlite3.connect(":memory:")
    db.enable_load_extension(True)
    db.load_extension(EXT)
    print(f"embed_file vs gensim {sys.modules['gensim'].__version__} "
          f"KeyedVectors.load_word2vec_format, {args.rows} x {args.dim}, "
          f"SQLite {sqlite3.sqlite_version}, best of {args.repeat}\n")
    print(f"{'file':8} {'MB':>7}  {'embed_file':>18}  {'gensim':>18}  "
          f"{'speedup':>7}")
    for label, path, is_binary in (("text", text, False),
                                   ("binary", binary, True)):
        mb = os.path.getsize(path) / 1e6
        warm(path)
        t_embed, (count, nbytes) = best_of(args.repeat, lambda: db.execute(
            "SELECT count(*), sum(length(vector)) FROM embed_file(?)",
            (path,)).fetchone())
        assert count == args.rows and nbytes == args.rows * args.dim * 4
        t_gensim, kv = best_of(args.repeat, lambda: KeyedVectors.
                               load_word2vec_format(path, binary=is_binary))
        assert kv.vectors.shape == (args.rows, args.dim)
        print(f"{label:8} {mb:7.1f}  {t_embed:6.3f} s {mb / t_embed:6.0f} MB/s"
              f"  {t_gensim:6.3f} s {mb / t_gensim:6.0f} MB/s"
              f"  {t_gensim / t_embed:6.1f}x")


if __name__ == "__main__":
    main()
