"""Every SQL example in README.md runs and prints what the README shows, and
the README's tables of make targets are the Makefile's list (`make help`).

The ```sql blocks of one section (a heading and its text) run in one fresh
sqlite3 shell session with the extension loaded; the lines of a block that
start with "-- " are the expected output, in order. Error lines are
compared without the shell's "near line N" and the caret context lines that
newer shells print."""
import os
import re
import subprocess

from conftest import EXT, ROOT


def sections():
    text = open(os.path.join(ROOT, "README.md")).read()
    parts = re.split(r"^#{1,4} ", text, flags=re.M)
    for part in parts[1:]:
        title = part.splitlines()[0]
        blocks = re.findall(r"^```sql\n(.*?)^```", part, flags=re.M | re.S)
        if blocks:
            yield title, blocks


def normalize(lines):
    out = []
    for line in lines:
        line = re.sub(r"^(Runtime|Parse) error near line \d+:", r"\1 error:", line)
        line = re.sub(r" \(\d+\)$", "", line)  # the result code suffix
        if line.strip().endswith("^--- error here"):
            out.pop()  # newer shells echo the statement above a caret
            continue
        out.append(line.rstrip())
    return out


def test_readme_sql_examples():
    checked = 0
    failures = []
    for title, blocks in sections():
        script = "\n".join(blocks)
        want = [l[3:] if l.startswith("-- ") else "" for l in script.splitlines()
                if l.startswith("--")]
        want = normalize([w for w in want if w])
        run = subprocess.run(["sqlite3", "-batch", "-cmd", f".load {EXT}", ":memory:"],
                             input=script.replace(".load ./embed\n", ""),
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
        got = normalize((run.stdout + run.stderr).splitlines())
        # stdout and stderr are separate pipes here: compare as multisets of
        # lines per section, and outputs in order
        got_out = normalize(run.stdout.splitlines())
        want_out = [w for w in want if not re.match(r"(Runtime|Parse) error:", w)]
        want_err = sorted(w for w in want if re.match(r"(Runtime|Parse) error:", w))
        got_err = sorted(g for g in got if re.match(r"(Runtime|Parse) error:", g))
        if got_out != want_out or got_err != want_err:
            failures.append((title, want_out, got_out, want_err, got_err))
        checked += 1
    assert checked > 10
    assert not failures, "\n\n".join(
        f"section {t!r}:\n want {wo}\n got  {go}\n want errors {we}\n got errors  {ge}"
        for t, wo, go, we, ge in failures)


def test_readme_lists_the_makefiles_targets():
    """The tables of "Build, demo and test" hold the targets of `make help`
    (the Makefile's header), in its order, with the same one-line texts."""
    out = subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT, "help"],
                         capture_output=True, text=True, timeout=60, check=True)
    want = re.findall(r"^  (make(?: [\w.-]+)?) +(\S.*)$", out.stdout, flags=re.M)
    text = open(os.path.join(ROOT, "README.md")).read()
    part = text.split("\n## Build, demo and test\n")[1].split("\n## ")[0]
    got = re.findall(r"^\| `(make[^`]*)` \| (.*) \|$", part, flags=re.M)
    assert len(want) > 20
    assert got == want
