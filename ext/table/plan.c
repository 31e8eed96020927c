/*
** plan.c - query plans of the `embedding` virtual table (xBestIndex).
**
** Usage: the plans behind
**
**     SELECT vector FROM tok WHERE id = 3;                     -- PLAN_EQ
**     SELECT vector FROM tok WHERE id IN (1, 5, 9);            -- PLAN_IN
**     SELECT id FROM tok WHERE id >= 10 AND id < 20;           -- ranges
**     SELECT id FROM tok ORDER BY id DESC;                     -- PLAN_DESC
**     SELECT id, distance FROM tok WHERE vector MATCH :q AND k = 5;
**     SELECT id FROM tok WHERE vector MATCH :q ORDER BY distance LIMIT 5;
**
** idxNum bits (table/module.h), with their arguments in this order in
** argv[] of xFilter (cursor.c):
**
**     PLAN_EQ      0x001  id = ?            one point lookup
**     PLAN_IN      0x002  id IN (...)       all values at once, sorted,
**                                           deduplicated, point lookups
**     PLAN_LO      0x004  id > ? / id >= ?  (PLAN_LO_GT when >)
**     PLAN_HI      0x010  id < ? / id <= ?  (PLAN_HI_LT when <)
**     PLAN_KNN     0x040  vector MATCH ?    exact k-nearest search (search.c)
**     PLAN_K       0x080  k = ?
**     PLAN_LIMIT   0x100  LIMIT ?           (KNN with ORDER BY distance)
**     PLAN_OFFSET  0x200  OFFSET ?
**     PLAN_DESC    0x400  scan in descending id order
**     PLAN_NPROBE 0x1000  nprobe = ?       cells an index=ivf search probes
**                         (0: an exact search)
**     PLAN_ALL     0x800  KNN ranking every row: ORDER BY distance with no
**                         k and no LIMIT offered (SQLite before 3.41 does
**                         not offer LIMIT with MATCH); SQLite applies LIMIT
**
** No constraint is a full scan in id order. Costs: EQ 1, IN 10 per value,
** ranges a fraction of a full scan, full scan PLAN_EST_ROWS; a KNN plan
** adds the distance computations. Output is in ascending id order (or
** descending with PLAN_DESC), KNN output by ascending (distance, id), so
** ORDER BY id / ORDER BY distance are consumed. A MATCH whose query vector
** is not yet known (unusable) makes every other plan very expensive, so
** SQLite waits for it.
*/
#include "table/module.h"

#define PLAN_EST_ROWS 1000000.0

int embedBestIndex(sqlite3_vtab *pVtab, sqlite3_index_info *info) {
  int eq = -1, lo = -1, hi = -1, match = -1, kc = -1, limit = -1, offset = -1,
      probe = -1;
  int i, argv_index = 0, plan = 0, match_unusable = 0;
  double rows = PLAN_EST_ROWS, cost;
  (void)pVtab;
  for (i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *c = &info->aConstraint[i];
    int col = c->iColumn;
    if (!c->usable) {
      if (col == COL_VECTOR && c->op == SQLITE_INDEX_CONSTRAINT_MATCH)
        match_unusable = 1;
      continue;
    }
    if (c->op == SQLITE_INDEX_CONSTRAINT_LIMIT) { /* iColumn is meaningless */
      limit = i;
    } else if (c->op == SQLITE_INDEX_CONSTRAINT_OFFSET) {
      offset = i;
    } else if (col == COL_ID || col == -1) {
      switch (c->op) {
        case SQLITE_INDEX_CONSTRAINT_EQ:
          if (eq < 0) eq = i;
          break;
        case SQLITE_INDEX_CONSTRAINT_GT:
        case SQLITE_INDEX_CONSTRAINT_GE:
          if (lo < 0) lo = i;
          break;
        case SQLITE_INDEX_CONSTRAINT_LT:
        case SQLITE_INDEX_CONSTRAINT_LE:
          if (hi < 0) hi = i;
          break;
        default:
          break;
      }
    } else if (col == COL_VECTOR && c->op == SQLITE_INDEX_CONSTRAINT_MATCH) {
      if (match < 0) match = i;
    } else if (col == COL_K && c->op == SQLITE_INDEX_CONSTRAINT_EQ) {
      if (kc < 0) kc = i;
    } else if (col == COL_NPROBE && c->op == SQLITE_INDEX_CONSTRAINT_EQ) {
      if (probe < 0) probe = i;
    }
  }

  if (eq >= 0) {
    info->aConstraintUsage[eq].argvIndex = ++argv_index;
    info->aConstraintUsage[eq].omit = 1;
    if (sqlite3_vtab_in(info, eq, -1)) {
      sqlite3_vtab_in(info, eq, 1);
      plan |= PLAN_IN;
      rows = 10;
    } else {
      plan |= PLAN_EQ;
      rows = 1;
    }
  } else {
    if (lo >= 0) {
      info->aConstraintUsage[lo].argvIndex = ++argv_index;
      plan |= PLAN_LO;
      if (info->aConstraint[lo].op == SQLITE_INDEX_CONSTRAINT_GT)
        plan |= PLAN_LO_GT;
      rows /= 4;
    }
    if (hi >= 0) {
      info->aConstraintUsage[hi].argvIndex = ++argv_index;
      plan |= PLAN_HI;
      if (info->aConstraint[hi].op == SQLITE_INDEX_CONSTRAINT_LT)
        plan |= PLAN_HI_LT;
      rows /= 4;
    }
  }
  cost = rows;

  if (match >= 0) {
    int order_ok = 1;
    plan |= PLAN_KNN;
    info->aConstraintUsage[match].argvIndex = ++argv_index;
    info->aConstraintUsage[match].omit = 1;
    if (kc >= 0) {
      plan |= PLAN_K;
      info->aConstraintUsage[kc].argvIndex = ++argv_index;
      info->aConstraintUsage[kc].omit = 1;
    }
    if (probe >= 0) {
      plan |= PLAN_NPROBE;
      info->aConstraintUsage[probe].argvIndex = ++argv_index;
      info->aConstraintUsage[probe].omit = 1;
    }
    /* ORDER BY must be (distance ASC [, id ASC]) or absent to use LIMIT. */
    for (i = 0; i < info->nOrderBy; i++) {
      const struct sqlite3_index_orderby *o = &info->aOrderBy[i];
      if (o->desc) order_ok = 0;
      if (i == 0 && o->iColumn != COL_DISTANCE) order_ok = 0;
      if (i == 1 && o->iColumn != COL_ID && o->iColumn != -1) order_ok = 0;
      if (i > 1) order_ok = 0;
    }
    /* LIMIT bounds the search only for ORDER BY distance without k; with
    ** k, SQLite applies the LIMIT to the k rows itself */
    if (limit >= 0 && order_ok && kc < 0 && info->nOrderBy > 0) {
      plan |= PLAN_LIMIT;
      info->aConstraintUsage[limit].argvIndex = ++argv_index;
      if (offset >= 0) {
        plan |= PLAN_OFFSET;
        info->aConstraintUsage[offset].argvIndex = ++argv_index;
      }
    }
    if (order_ok && info->nOrderBy > 0) {
      info->orderByConsumed = 1;
      if (kc < 0 && !(plan & PLAN_LIMIT)) plan |= PLAN_ALL;
    }
    cost = rows * 10.0 + 100.0;
    rows = 10;
  } else {
    if (info->nOrderBy == 1 && (info->aOrderBy[0].iColumn == COL_ID ||
                                info->aOrderBy[0].iColumn == -1)) {
      if (info->aOrderBy[0].desc) {
        if (!(plan & (PLAN_EQ | PLAN_IN))) {
          plan |= PLAN_DESC;
          info->orderByConsumed = 1;
        }
      } else {
        info->orderByConsumed = 1;
      }
    }
    if (match_unusable) cost *= 1e6; /* wait until the query vector is known */
  }
  if (plan & PLAN_EQ) info->idxFlags |= SQLITE_INDEX_SCAN_UNIQUE;
  info->idxNum = plan;
  info->estimatedCost = cost;
  info->estimatedRows = (sqlite3_int64)rows;
  return SQLITE_OK;
}
