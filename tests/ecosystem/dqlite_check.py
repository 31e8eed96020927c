"""Replicated SQLite with dqlite (make test-dqlite).

A 3-node dqlite cluster on loopback addresses serves an `embedding` table:
each node is Debian's dqlite-demo (go-dqlite 1.11, libdqlite 1.11), an app
that embeds dqlite, with embed registered the way such an app registers it
(tests/ecosystem/dqlite_embed.c: libembed.a and sqlite3_auto_extension at
the first open); SQL goes through go-dqlite's `dqlite` shell, which sends
it to the leader. The test

1. starts the cluster and waits for 3 voters;
2. creates a table with an explicit seed and trains it through the leader
   with the write-statement form (INSERT ... SELECT embed_update(...)),
   checking every row against the same steps run locally (same build);
3. SIGKILLs the leader: the new leader returns the same rows (bit for bit,
   as hex) and search results, and takes another step;
4. restarts the killed node from its data folder; makes it the leader the
   way Raft allows (the third node down, a step that then needs the
   restarted node's acknowledgement, the leader killed, the third node
   back without that step, so that only the restarted node can win): it
   answers with every row, including the steps it missed, and the same
   search; the cluster takes one more step.

dqlite replicates pages (WAL frames) through Raft, so followers never run
the extension's code to replicate; they need it when they lead. Not named
test_*.py, so that make test-python does not collect it. EMBED_DQLITE_SHIM
is the built dqlite_embed.so.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from conftest import connect, say

SHIM = os.environ.get("EMBED_DQLITE_SHIM", "")
DEMO, SHELL = shutil.which("dqlite-demo"), shutil.which("dqlite")
N, DIM, LR = 200, 16, 0.05
CREATE = (f"CREATE VIRTUAL TABLE t USING embedding(num_embeddings={N}, "
          f"dim={DIM}, seed=424242, optimizer=adam)")
QUERY = "[" + ", ".join(str((i % 5) - 2) for i in range(DIM)) + "]"
SEARCH = f"SELECT id, distance FROM t WHERE vector MATCH '{QUERY}' AND k = 5"
ROWS = "SELECT id, hex(vector) FROM t"

pytestmark = pytest.mark.skipif(
    not (DEMO and SHELL and os.path.isfile(SHIM)),
    reason="needs dqlite-demo and dqlite (apt-get install go-dqlite) and "
           "EMBED_DQLITE_SHIM")


def free_port_base():
    """A base port p with p+1..p+3 and p+11..p+13 free on 127.0.0.1."""
    for _ in range(50):
        base = random.randrange(20000, 60000, 100)
        try:
            for off in (1, 2, 3, 11, 12, 13):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + off))
            return base
        except OSError:
            continue
    raise RuntimeError("no free loopback ports")


class Cluster:
    def __init__(self, root):
        self.root = root
        self.base = free_port_base()
        self.procs = {}

    def db(self, i):
        return f"127.0.0.1:{self.base + i}"

    def start(self, i, join=True):
        folder = os.path.join(self.root, f"node{i}")
        os.makedirs(folder, exist_ok=True)
        args = [DEMO, "--api", f"127.0.0.1:{self.base + 10 + i}",
                "--db", self.db(i), "-D", folder]
        if join and i != 1:
            args += ["--join", self.db(1)]
        log = open(os.path.join(self.root, f"node{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(args, stdout=log, stderr=log,
                                         env=dict(os.environ, LD_PRELOAD=SHIM),
                                         start_new_session=True)

    def kill(self, i):
        p = self.procs.pop(i)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)

    def stop_all(self):
        for i in list(self.procs):
            self.kill(i)

    def live(self):
        return ",".join(self.db(i) for i in sorted(self.procs))

    def sql(self, statement, servers=None, timeout=10):
        run = subprocess.run([SHELL, "-s", servers or self.live(), "embed",
                              statement], capture_output=True, text=True,
                             timeout=timeout)
        if run.returncode != 0:
            raise RuntimeError(f"dqlite shell: {statement[:60]}: "
                               f"{run.stderr.strip() or run.stdout.strip()}")
        return run.stdout.strip().splitlines()

    def shell(self, command, timeout=10):
        run = subprocess.run([SHELL, "-s", self.live(), "embed"],
                             input=command + "\n", capture_output=True,
                             text=True, timeout=timeout)
        return run.stdout.replace("dqlite> ", "").strip().splitlines()

    def leader(self):
        out = self.shell(".leader")
        return out[0] if out else ""

    def wait(self, what, check, limit=30):
        deadline = time.monotonic() + limit
        while True:
            try:
                got = check()
                if got:
                    return got
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)


def step_sql(k):
    """Training step k through the write-statement form: the gradients are
    multiples of 1/16, exact in JSON and float32."""
    rng = np.random.default_rng(k)
    ids = rng.integers(0, N, 8).tolist()
    grads = (rng.integers(-16, 17, (8, DIM)) / 16).tolist()
    return (f"INSERT INTO steps(k, changed) SELECT {k}, embed_update('t', "
            f"'{json.dumps(ids)}', '{json.dumps(grads)}', {LR})")


def local_rows(steps):
    """The same steps on a local database: the rows as the shell shows them."""
    con = connect()
    con.execute(CREATE)
    con.execute("CREATE TABLE steps(k INTEGER PRIMARY KEY, changed INTEGER)")
    for k in range(1, steps + 1):
        con.execute(step_sql(k))
    rows = [f"{i}|{h}" for i, h in con.execute(ROWS)]
    return rows, con


def test_three_node_cluster_trains_fails_over_and_catches_up(tmp_path, request):
    cluster = Cluster(str(tmp_path))
    started = time.monotonic()
    try:
        for i in (1, 2, 3):
            cluster.start(i)
            if i == 1:
                cluster.wait("node 1", lambda: cluster.leader() == cluster.db(1))
        voters = cluster.wait("3 voters", lambda: (lambda c: c if sum(
            line.endswith("|voter") for line in c) == 3 else None)(
                cluster.shell(".cluster")))
        up_s = time.monotonic() - started
        assert cluster.sql("SELECT embed_version()") == ["0.1.0"]
        cluster.sql(CREATE)
        cluster.sql("CREATE TABLE steps(k INTEGER PRIMARY KEY, changed INTEGER)")
        steps = trained = 20
        t0 = time.monotonic()
        for k in range(1, steps + 1):
            cluster.sql(step_sql(k))
        train_s = time.monotonic() - t0
        want, ref = local_rows(steps)
        rows = cluster.sql(ROWS)
        assert rows == want  # the seeded rows and every step, bit for bit
        search = cluster.sql(SEARCH)
        assert [r.split("|")[0] for r in search] == \
            [str(i) for i, _ in ref.execute(SEARCH)]
        assert cluster.sql("SELECT count(*) FROM steps") == [str(steps)]

        # SIGKILL the leader: the others elect one with the same rows
        old = cluster.leader()
        victim = next(i for i in cluster.procs if cluster.db(i) == old)
        t0 = time.monotonic()
        cluster.kill(victim)
        new = cluster.wait("a new leader", lambda: (lambda l: l if l and l != old
                                                    else None)(cluster.leader()))
        failover_s = time.monotonic() - t0
        assert cluster.wait("rows", lambda: cluster.sql(ROWS)) == rows
        assert cluster.sql(SEARCH) == search
        steps += 1
        cluster.sql(step_sql(steps))  # the new leader trains on
        want, ref = local_rows(steps)
        assert cluster.sql(ROWS) == want

        # the killed node restarts from its folder and catches up. To read
        # from it, it must lead; Raft decides that deterministically: with
        # the third node F down, the next step commits only once the
        # restarted node has the whole log; then the leader goes down and F
        # comes back without that step, so only the restarted node can win
        cluster.start(victim, join=False)
        t0 = time.monotonic()
        lead = next(i for i in cluster.procs if cluster.db(i) == new)
        third = next(i for i in cluster.procs if i not in (victim, lead))
        cluster.kill(third)
        steps += 1
        cluster.sql(step_sql(steps), timeout=30)  # needs the restarted node
        cluster.kill(lead)
        cluster.start(third, join=False)
        # (the election can take several rounds while F, behind, keeps
        # starting elections it cannot win: one run in four took over 30 s
        # on a busy 2-core machine)
        cluster.wait("the restarted node to lead",
                     lambda: cluster.leader() == cluster.db(victim), limit=90)
        want = local_rows(steps)[0]
        assert cluster.wait("rows", lambda: cluster.sql(
            ROWS, servers=cluster.db(victim))) == want
        assert cluster.sql(SEARCH, servers=cluster.db(victim)) == \
            [r for r in cluster.sql(SEARCH)]
        catchup_s = time.monotonic() - t0
        cluster.start(lead, join=False)
        steps += 1
        cluster.sql(step_sql(steps))
        assert cluster.sql(ROWS) == local_rows(steps)[0]
    finally:
        cluster.stop_all()
    say(request, f"test-dqlite: 3 voters on loopback up in {up_s:.1f} s "
                 f"({len(voters)} nodes); {trained} steps through the leader in "
                 f"{train_s:.1f} s, rows equal to a local run bit for bit; leader "
                 f"SIGKILLed, new leader in {failover_s:.1f} s with the same "
                 f"{N} rows and top-5 search, and a step; the restarted node "
                 f"caught up and led with every row and the same search in "
                 f"{catchup_s:.1f} s; one more step; "
                 f"{time.monotonic() - started:.1f} s in all")
