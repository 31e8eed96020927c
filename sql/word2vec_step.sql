-- word2vec_step.sql - ONE training step of the skip-gram recipe of
-- sql/word2vec.sql (read its header: model, parameters, sampling, driving).
-- Run sql/word2vec.sql once, then this file as many times as there are
-- steps, on a connection with the embed extension loaded. It prints nothing;
-- each run appends one row to w2v_log. One transaction per step (BEGIN ...
-- COMMIT below), so run it on a connection that is not inside a
-- transaction (Python's executescript commits a pending one first).
--
--   1. centers  batch_size random corpus positions, each with its window b
--   2. pairs    (center, context, 1) for contexts within b, not across a
--               NULL token; then `negatives` (center, negative, 0) per
--               context pair, drawn from w2v_vocab's CDF
--   3. batch    each pair's vectors and score s = embed_dot(in_c, out_o),
--               all read before any update
--   4. log      step, lr, pairs, mean loss -log sigmoid(+-s)
--   5. update   one embed_update per table, gradient g * other vector with
--               g = embed_sigmoid(s) - label

BEGIN;

-- Scratch tables of this connection (TEMP: nothing reaches the file; they
-- keep the last step's centers, pairs and batch until the next step).
CREATE TEMP TABLE IF NOT EXISTS w2v_centers(pos INTEGER, b INTEGER);
CREATE TEMP TABLE IF NOT EXISTS w2v_pairs(center INTEGER, target INTEGER,
                                          label INTEGER);
CREATE TEMP TABLE IF NOT EXISTS w2v_batch(center INTEGER, target INTEGER,
                                          label INTEGER, score REAL,
                                          vin BLOB, vout BLOB);
DELETE FROM w2v_centers;
DELETE FROM w2v_pairs;
DELETE FROM w2v_batch;

-- 1. centers. random() & 0x7fffffffffffffff is a uniform non-negative
-- integer (abs(random()) can overflow); random() is called once per value
-- stored, so each draw is used exactly as drawn.
INSERT INTO w2v_centers(pos, b)
WITH RECURSIVE n(i) AS (
  SELECT 1 UNION ALL
  SELECT i + 1 FROM n WHERE i < (SELECT batch_size FROM w2v_params))
SELECT lo + (random() & 0x7fffffffffffffff) % (hi - lo + 1),
       1 + (random() & 0x7fffffffffffffff) % p.window_size
FROM n, w2v_params p,
     (SELECT min(pos) AS lo, max(pos) AS hi FROM corpus)
WHERE hi IS NOT NULL;

-- 2a. positive pairs: every context within the center's window b that is no
-- farther than the nearest sentence boundary (NULL token).
INSERT INTO w2v_pairs(center, target, label)
WITH RECURSIVE off(d) AS (
  SELECT 1 UNION ALL
  SELECT d + 1 FROM off WHERE d < (SELECT window_size FROM w2v_params))
SELECT c.token_id, o.token_id, 1
FROM w2v_centers w
JOIN corpus c ON c.pos = w.pos
JOIN off ON off.d <= w.b
JOIN corpus o ON o.pos IN (w.pos - off.d, w.pos + off.d)
WHERE c.token_id IS NOT NULL AND o.token_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM corpus x
                  WHERE x.pos BETWEEN min(w.pos, o.pos) AND max(w.pos, o.pos)
                    AND x.token_id IS NULL);

-- 2b. negatives: for each positive pair, `negatives` draws u in [0, 1) and
-- the first word whose cum exceeds u (inverse CDF of count^neg_power).
-- MATERIALIZED keeps each u one value (an inlined CTE could call random()
-- again where u is used). A draw equal to the context word is dropped.
INSERT INTO w2v_pairs(center, target, label)
WITH RECURSIVE k(j) AS (
  SELECT 1 UNION ALL
  SELECT j + 1 FROM k WHERE j < (SELECT negatives FROM w2v_params)),
draws AS MATERIALIZED (
  SELECT p.center, p.target AS context,
         (random() & 0x7fffffffffffffff) / 9223372036854775808.0 AS u
  FROM w2v_pairs p, k
  WHERE p.label = 1 AND (SELECT negatives FROM w2v_params) > 0),
negs AS (
  SELECT center, context,
         (SELECT v.id FROM w2v_vocab v WHERE v.cum > u
          ORDER BY v.cum LIMIT 1) AS target
  FROM draws)
SELECT center, target, 0 FROM negs
WHERE target IS NOT NULL AND target <> context;

-- 3. the forward pass, before any update: both vectors of every pair, by
-- joins on the tables' ids, and the pair's score. (The vector column is the
-- stored row; for tables created with max_norm, use
-- embed_lookup('w2v_in', p.center) and embed_lookup('w2v_out', p.target)
-- instead, which apply it, at about twice the cost.)
INSERT INTO w2v_batch(center, target, label, score, vin, vout)
SELECT p.center, p.target, p.label, embed_dot(i.vector, o.vector),
       i.vector, o.vector
FROM w2v_pairs p
JOIN w2v_in i ON i.id = p.center
JOIN w2v_out o ON o.id = p.target;

-- 4. log the step: its lr (linear decay when total_steps is set), the
-- number of pairs and their mean loss.
INSERT INTO w2v_log(step, lr, pairs, loss)
SELECT s.step,
       CASE WHEN p.total_steps IS NULL THEN p.lr
            ELSE p.lr * max(1e-4, 1.0 - (s.step - 1) * 1.0 / p.total_steps)
       END,
       (SELECT count(*) FROM w2v_batch),
       (SELECT -avg(embed_log_sigmoid(CASE label WHEN 1 THEN score
                                                 ELSE -score END))
        FROM w2v_batch)
FROM w2v_params p,
     (SELECT coalesce(max(step), 0) + 1 AS step FROM w2v_log) s;

-- 5. the two updates, one batch embed_update per table, from the pairs'
-- vectors as read in 3. json_group_array and embed_stack aggregate the same
-- rows in the same order, so ids[i] gets gradient row i. The results (rows
-- changed) go to the log; an empty batch updates nothing (NULL).
UPDATE w2v_log SET
  rows_in = (
    SELECT embed_update('w2v_in', json_group_array(center),
                        embed_stack(embed_scale(vout,
                                                embed_sigmoid(score) - label)),
                        w2v_log.lr)
    FROM w2v_batch HAVING count(*) > 0),
  rows_out = (
    SELECT embed_update('w2v_out', json_group_array(target),
                        embed_stack(embed_scale(vin,
                                                embed_sigmoid(score) - label)),
                        w2v_log.lr)
    FROM w2v_batch HAVING count(*) > 0)
WHERE step = (SELECT max(step) FROM w2v_log);

COMMIT;
