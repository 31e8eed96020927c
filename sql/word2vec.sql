-- word2vec.sql - skip-gram with negative sampling (SGNS, Mikolov et al. 2013),
-- written in SQL on top of the embed extension. This file is the SETUP; one
-- training step is sql/word2vec_step.sql, which the caller runs N times.
--
-- ---------------------------------------------------------------- the model
-- Two embedding tables: w2v_in (the word vectors one keeps, "syn0") and
-- w2v_out (the context vectors, "syn1neg"). For a center word c and a target
-- word o with label 1 (o seen within the window around c) or 0 (o a negative
-- sample), with s = embed_dot(in_c, out_o):
--
--   loss(c, o) = -log sigmoid(s)    (label 1)    -log sigmoid(-s)   (label 0)
--   g          = dloss/ds = embed_sigmoid(s) - label
--   grad in_c  = g * out_o          grad out_o = g * in_c    (embed_scale)
--
-- One step takes a batch of (center, target, label) pairs, computes every
-- pair's score and gradient from the vectors as they were before the step,
-- and then makes ONE batch embed_update per table: ids as
-- json_group_array(id), gradients as embed_stack(gradient vectors). Repeated
-- ids have their gradients summed (the update is that of the SUM of the
-- pairs' losses), so lr is per pair, as word2vec's alpha. The loss logged is
-- the mean over the batch's pairs of -embed_log_sigmoid(+-s).
--
-- ---------------------------------------------------------------- the data
--   corpus(pos INTEGER PRIMARY KEY, token_id INTEGER)
-- the token stream, in order of pos (gaps in pos are allowed). A NULL
-- token_id is a sentence boundary: windows never cross it. Token ids are any
-- integers (they are the ids of the rows of w2v_in and w2v_out). Create and
-- fill it before running this file (or let this file create it empty, fill
-- it, and run the file again: it is idempotent, see below).
--
-- ---------------------------------------------------------------- parameters
--   dim          the dim= of the two CREATE VIRTUAL TABLE statements below
--                (32). Those arguments are literals, so dim is not a column
--                of w2v_params: to change it (or the optimizer, the seed,
--                max_norm, ...) create w2v_in and w2v_out yourself before
--                running this file; "IF NOT EXISTS" then keeps yours, and
--                rows already in them are kept as they are. w2v_out should
--                start at zeros (init=zeros), as in word2vec.
-- and one row of w2v_params (change it with UPDATE at any time; the step
-- reads it every time, except neg_power, read here):
--   window_size  5      max distance between center and context; each center
--                       draws its own window b uniformly in 1..window_size
--                       (word2vec's "reduced window", which weighs near
--                       words more)
--   negatives    5      negative samples per (center, context) pair
--   lr           0.025  learning rate (per pair: gradients are summed)
--   batch_size   64     centers per step (each gives up to 2b contexts, and
--                       each context 1 + negatives pairs)
--   total_steps  NULL   NULL: constant lr; otherwise lr decays linearly to
--                       lr * 1e-4 at step total_steps, as word2vec.c does
--   neg_power    0.75   negatives are drawn from the unigram distribution
--                       raised to this power (word2vec's choice: 0 gives
--                       uniform negatives, 1 the plain unigram); applied when
--                       this file runs
--
-- ---------------------------------------------------------------- sampling
-- All randomness is SQLite's random() (it cannot be seeded from SQL, so two
-- runs differ; the initial vectors come from the tables' seed= and do not):
--  - centers: batch_size positions drawn uniformly with replacement from
--    min(pos)..max(pos) (a position with no row or a NULL token is skipped),
--    so training is sampled SGD over the corpus, not word2vec's sequential
--    passes (epochs = steps * batch_size / corpus size);
--  - negatives: inverse-CDF sampling over w2v_vocab.cum (cumulative
--    count^neg_power, normalized), one index seek per draw, exact for any
--    vocabulary size (word2vec.c uses a 1e8-slot table for the same);
--    a negative equal to the pair's context word is dropped, as word2vec.c
--    does. Not implemented: subsampling of frequent words, hierarchical
--    softmax, CBOW.
--
-- ---------------------------------------------------------------- driving it
-- SQL has no loop that can call embed_update repeatedly in sequence (a
-- recursive CTE evaluates its rows in one statement, and embed_update is
-- DIRECTONLY), so the caller loops over the step file:
--
--   Python (examples/skipgram.py does this):
--       conn = sqlite3.connect("w2v.db", isolation_level=None)
--       conn.enable_load_extension(True); conn.load_extension("./embed")
--       conn.executescript(open("sql/word2vec.sql").read())
--       step = open("sql/word2vec_step.sql").read()
--       for _ in range(n_steps):
--           conn.executescript(step)
--       conn.execute("SELECT step, loss FROM w2v_log ORDER BY step")
--
--   sqlite3 shell (it cannot loop; feed it the step file n times):
--       ( echo .load ./embed; cat sql/word2vec.sql;
--         for i in $(seq 500); do cat sql/word2vec_step.sql; done ) |
--         sqlite3 w2v.db
--
-- Each step is one transaction (BEGIN ... COMMIT in the step file), so a
-- failed or interrupted step leaves the previous state intact. The progress
-- is in w2v_log(step, lr, pairs, loss, rows_in, rows_out).
--
-- Nearest neighbours of word :w afterwards (the tables' metric, cosine by
-- default; k = 2 because the first hit is :w itself):
--   SELECT id, distance FROM w2v_in
--   WHERE vector MATCH (SELECT vector FROM w2v_in WHERE id = :w) AND k = 2;
--
-- Running this file again is harmless: it re-counts the vocabulary (from the
-- current corpus) and adds rows for new token ids only; trained rows, the
-- parameters and the log are kept. Needs SQLite 3.39+ (MATERIALIZED CTEs,
-- HAVING without GROUP BY, the math function pow(), all in the stock
-- 3.40 shell and Python's sqlite3 on Debian) with embed loaded.

CREATE TABLE IF NOT EXISTS corpus(pos INTEGER PRIMARY KEY, token_id INTEGER);

CREATE TABLE IF NOT EXISTS w2v_params(
  one          INTEGER PRIMARY KEY CHECK (one = 1),
  window_size  INTEGER NOT NULL DEFAULT 5    CHECK (window_size >= 1),
  negatives    INTEGER NOT NULL DEFAULT 5    CHECK (negatives >= 0),
  lr           REAL    NOT NULL DEFAULT 0.025 CHECK (lr >= 0),
  batch_size   INTEGER NOT NULL DEFAULT 64   CHECK (batch_size >= 1),
  total_steps  INTEGER          DEFAULT NULL CHECK (total_steps >= 1),
  neg_power    REAL    NOT NULL DEFAULT 0.75
);
INSERT OR IGNORE INTO w2v_params(one) VALUES (1);

-- dim = 32 (see "parameters" above). word2vec's initialization: w2v_in
-- uniform in [-0.5/dim, 0.5/dim) (init=uniform, scaled below), w2v_out zeros.
CREATE VIRTUAL TABLE IF NOT EXISTS w2v_in  USING embedding(dim=32, init=uniform);
CREATE VIRTUAL TABLE IF NOT EXISTS w2v_out USING embedding(dim=32, init=zeros);

-- One row per step: lr used, pairs in the batch, their mean loss (before the
-- step), rows changed in each table.
CREATE TABLE IF NOT EXISTS w2v_log(
  step     INTEGER PRIMARY KEY,
  lr       REAL,
  pairs    INTEGER,
  loss     REAL,
  rows_in  INTEGER,
  rows_out INTEGER
);

-- The vocabulary: token id, count, and the negative-sampling CDF: cum is the
-- cumulative sum of count^neg_power in id order, divided by the total.
CREATE TABLE IF NOT EXISTS w2v_vocab(
  id    INTEGER PRIMARY KEY,
  count INTEGER NOT NULL,
  cum   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS w2v_vocab_cum ON w2v_vocab(cum);

BEGIN;
DELETE FROM w2v_vocab;
INSERT INTO w2v_vocab(id, count, cum)
WITH counts AS (
  SELECT token_id AS id, count(*) AS count,
         pow(count(*), (SELECT neg_power FROM w2v_params)) AS weight
  FROM corpus WHERE token_id IS NOT NULL GROUP BY token_id)
SELECT id, count,
       sum(weight) OVER (ORDER BY id ROWS UNBOUNDED PRECEDING)
         / sum(weight) OVER ()
FROM counts;

-- Rows for token ids that have none yet: w2v_in initialized by the table
-- (uniform in [-1, 1), from its seed) and scaled to [-0.5/dim, 0.5/dim).
CREATE TEMP TABLE w2v_new AS
  SELECT id FROM w2v_vocab WHERE id NOT IN (SELECT id FROM w2v_in);
INSERT INTO w2v_in(id) SELECT id FROM w2v_new;
UPDATE w2v_in SET vector = embed_scale(vector, 0.5 / embed_dim(vector))
WHERE id IN (SELECT id FROM w2v_new);
INSERT OR IGNORE INTO w2v_out(id) SELECT id FROM w2v_new;
DROP TABLE w2v_new;
COMMIT;
