#!/usr/bin/python3
"""skipgram.py - word2vec (skip-gram with negative sampling) trained inside
SQLite by the SQL recipe sql/word2vec.sql + sql/word2vec_step.sql.

    make                                   # builds ./embed.so
    /usr/bin/python3 examples/skipgram.py [--seed 1] [--steps 600]
        [--time-limit 30] [--db :memory:] [--ext ./embed]

The corpus is synthetic and built here (no downloads): 8 planted groups of 6
words (colours, animals, ...). Each sentence draws 4 to 9 words from ONE
group, so words of a group share their contexts and nothing else; sentences
are separated by a NULL token, which the recipe's windows do not cross.
Training runs the step file until --steps or --time-limit is reached,
printing the mean loss every few hundred steps, then prints the nearest
neighbours of a few words (WHERE vector MATCH ... AND k = ... on w2v_in)
and the fraction of words whose nearest neighbour is in their own group.

The functions (build_corpus, setup, train, nearest, group_recovery) are what
tests/py/test_skipgram.py runs. The corpus and the initial vectors follow from
--seed; the recipe's sampling uses SQLite's random(), which cannot be
seeded, so the loss figures vary a little between runs.
"""
import argparse
import os
import random
import sqlite3
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETUP_SQL = os.path.join(ROOT, "sql", "word2vec.sql")
STEP_SQL = os.path.join(ROOT, "sql", "word2vec_step.sql")

GROUPS = {
    "colour":     ["red", "green", "blue", "yellow", "purple", "orange"],
    "animal":     ["cat", "dog", "horse", "cow", "sheep", "goat"],
    "fruit":      ["apple", "pear", "plum", "cherry", "grape", "lemon"],
    "number":     ["one", "two", "three", "four", "five", "six"],
    "tool":       ["hammer", "saw", "drill", "wrench", "chisel", "pliers"],
    "vehicle":    ["car", "bus", "train", "truck", "bike", "tram"],
    "planet":     ["mercury", "venus", "mars", "jupiter", "saturn", "neptune"],
    "instrument": ["piano", "violin", "flute", "drum", "guitar", "cello"],
}
WORDS = [w for ws in GROUPS.values() for w in ws]          # id = index
GROUP_OF = [g for g, ws in GROUPS.items() for _ in ws]

# The recipe's parameters used here (see the header of sql/word2vec.sql).
# The table options: dim 24, SGD (word2vec's optimizer); w2v_out at zeros.
DIM = 24
PARAMS = {"window_size": 3, "negatives": 5, "lr": 0.025, "batch_size": 32}


def build_corpus(seed, sentences=1500, min_len=4, max_len=9):
    """Token ids, sentences separated by None (a NULL token_id)."""
    rnd = random.Random(seed)
    groups = list(GROUPS.values())
    tokens = []
    for _ in range(sentences):
        group = rnd.randrange(len(groups))
        for _ in range(rnd.randint(min_len, max_len)):
            tokens.append(group * 6 + rnd.randrange(6))
        tokens.append(None)
    return tokens


def connect(db=":memory:", ext=None):
    conn = sqlite3.connect(db, isolation_level=None)
    conn.enable_load_extension(True)
    conn.load_extension(ext or os.environ.get("EMBED_EXT")
                        or os.path.join(ROOT, "embed"))
    conn.enable_load_extension(False)
    if db != ":memory:":
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")   # no fsync per step
    return conn


def setup(conn, corpus, seed, dim=DIM, total_steps=None, **params):
    """The corpus, the two tables (our dim and seed), the recipe's setup
    and its parameters."""
    conn.execute("CREATE TABLE IF NOT EXISTS corpus(pos INTEGER PRIMARY KEY, "
                 "token_id INTEGER)")
    conn.execute("CREATE TABLE IF NOT EXISTS words(id INTEGER PRIMARY KEY, "
                 "word TEXT, grp TEXT)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO corpus(pos, token_id) VALUES (?, ?)",
                     enumerate(corpus))
    conn.executemany("INSERT INTO words(id, word, grp) VALUES (?, ?, ?)",
                     [(i, w, g) for i, (w, g) in enumerate(zip(WORDS, GROUP_OF))])
    conn.execute(f"CREATE VIRTUAL TABLE w2v_in USING embedding(dim={dim}, "
                 f"init=uniform, seed={seed})")
    conn.execute(f"CREATE VIRTUAL TABLE w2v_out USING embedding(dim={dim}, "
                 f"init=zeros)")
    conn.execute("COMMIT")
    with open(SETUP_SQL) as f:
        conn.executescript(f.read())
    params = {**PARAMS, **params, "total_steps": total_steps}
    conn.execute("UPDATE w2v_params SET " +
                 ", ".join(f"{k} = ?" for k in params), list(params.values()))


def train(conn, steps, time_limit=None, report_every=100, out=print):
    """Run the step file up to `steps` times (or until time_limit seconds);
    print the mean loss of each `report_every` steps; return the list of
    (last step, mean loss) reported."""
    with open(STEP_SQL) as f:
        step_sql = f.read()
    start = time.perf_counter()
    curve = []
    first = conn.execute("SELECT coalesce(max(step), 0) FROM w2v_log").fetchone()[0]
    for done in range(1, steps + 1):
        conn.executescript(step_sql)
        last = done == steps or (time_limit is not None and
                                 time.perf_counter() - start > time_limit)
        if done % report_every == 0 or last:
            lo = first + done - ((done - 1) % report_every)
            loss, pairs = conn.execute(
                "SELECT avg(loss), sum(pairs) FROM w2v_log WHERE step >= ?",
                (lo,)).fetchone()
            curve.append((first + done, loss))
            out(f"  step {first + done:5d}  loss {loss:.4f}  "
                f"({pairs} pairs, {time.perf_counter() - start:5.1f} s)")
        if last:
            break
    return curve


def nearest(conn, word_id, k=1):
    """The k nearest words of word_id in w2v_in by cosine distance (the
    search asks for k + 1: the first hit is the word itself)."""
    return conn.execute(
        "SELECT id, distance FROM w2v_in "
        "WHERE vector MATCH (SELECT vector FROM w2v_in WHERE id = ?1) "
        "AND k = ?2 ORDER BY distance, id", (word_id, k + 1)).fetchall()[1:]


def group_recovery(conn):
    """Fraction of words whose nearest neighbour is in their own group."""
    hits = sum(GROUP_OF[nearest(conn, i)[0][0]] == GROUP_OF[i]
               for i in range(len(WORDS)))
    return hits / len(WORDS)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--time-limit", type=float, default=30.0,
                    help="stop training after this many seconds")
    ap.add_argument("--report-every", type=int, default=100)
    ap.add_argument("--db", default=":memory:")
    ap.add_argument("--ext", default=None, help="extension path (./embed)")
    args = ap.parse_args(argv)

    corpus = build_corpus(args.seed)
    conn = connect(args.db, args.ext)
    if conn.execute("SELECT count(*) FROM sqlite_schema "
                    "WHERE name = 'w2v_in'").fetchone()[0]:
        sys.exit(f"{args.db} already holds a model; use a new --db")
    setup(conn, corpus, args.seed, total_steps=args.steps)
    n_tokens = sum(t is not None for t in corpus)
    print(f"corpus: {n_tokens} tokens, {len(WORDS)} words in {len(GROUPS)} "
          f"planted groups; dim {DIM}, " +
          ", ".join(f"{k} {v}" for k, v in PARAMS.items()))
    print("training (mean loss per pair; ln 2 = 0.6931 at the start):")
    curve = train(conn, args.steps, args.time_limit, args.report_every)

    print("nearest neighbours in w2v_in (cosine distance):")
    for w in ["red", "cat", "apple", "three", "saw", "train", "mars", "violin"]:
        i = WORDS.index(w)
        near = ", ".join(f"{WORDS[j]} {d:.3f}" for j, d in nearest(conn, i, 3))
        print(f"  {w:8s} -> {near}")
    rec = group_recovery(conn)
    print(f"nearest neighbour in the same planted group: "
          f"{rec * len(WORDS):.0f}/{len(WORDS)} = {rec:.0%}")
    conn.close()
    return curve, rec


if __name__ == "__main__":
    main()
