"""Bad-input matrix over every CLI verb (issue 13, R3).

Every case runs the real `judgerl` entry point (`judgerl.cli.main`, in-process for speed; a few through
a subprocess) in a scratch folder and asserts: a non-zero exit, exactly one line on stderr that starts
with `error:` and names the file or field (and, where a case says so, what to do), no traceback, and
the scratch folder byte-for-byte as it was (nothing partial written, earlier results untouched).
No case loads a model: each is refused before any weights are read or any judge is called.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


# ---- harness -----------------------------------------------------------------------------------
def run_cli(args: list[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `judgerl ARGS`; any exception other than SystemExit propagates
    (that is the traceback case, and it fails the test)."""
    from judgerl.cli import main

    out, err, argv = io.StringIO(), io.StringIO(), sys.argv
    sys.argv = ["judgerl", *map(str, args)]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def snapshot(root: Path) -> dict[str, str]:
    state = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            state[rel] = "link"
        elif p.is_dir():
            state[rel] = "dir:" + oct(p.stat().st_mode & 0o777)
        else:
            state[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if os.access(p, os.R_OK) else "unreadable"
    return state


class WS:
    """A scratch folder (the working directory of the command) with helpers to write inputs."""

    def __init__(self, root: Path):
        self.root = root

    def text(self, name: str, text: str) -> Path:
        p = self.root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        return p

    def bytes(self, name: str, data: bytes) -> Path:
        p = self.root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def jsonl(self, name: str, rows: list) -> Path:
        return self.text(name, "".join(json.dumps(r) + "\n" for r in rows))

    def json(self, name: str, obj) -> Path:
        return self.text(name, json.dumps(obj))

    def dir(self, name: str) -> Path:
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        return p


@pytest.fixture
def ws(tmp_path, monkeypatch):
    root = tmp_path / "ws"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("JUDGERL_SHARED_DATA", str(root / "shared"))
    (root / "shared").mkdir()
    return WS(root)


def refused(ws: WS, args: list, *names: str) -> str:
    """Run ARGS and check the refusal contract; returns the error line."""
    before = snapshot(ws.root)
    code, _, err = run_cli(args)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert code != 0, f"exit 0 for {args}: {err}"
    assert len(lines) == 1 and lines[0].startswith("error:"), f"want one 'error:' line, got: {err!r}"
    for n in names:
        assert str(n) in lines[0], f"{n!r} not named in {lines[0]!r}"
    assert snapshot(ws.root) == before, "the scratch folder changed (partial output or earlier results touched)"
    return lines[0]


# ---- inputs reused by many cases -----------------------------------------------------------
NOT_UTF8 = "prompt: caf\xe9\n".encode("latin-1")
BINARY = bytes(range(256)) * 4
GOOD_POINT = [{"prompt": "Say hi.", "response": "Hi!"}]
GOOD_ITEMS = [{"id": "a", "prompt": "Say hi.", "responses": ["Hi!", "Hello."]}]


def bad_files(ws: WS, stem: str) -> dict[str, Path]:
    """Bad variants of a record file: non-UTF-8, binary, not-gzip .gz, directory, corrupt Parquet,
    a .json holding a scalar, a JSON line that is a list."""
    return {
        "latin1": ws.bytes(f"{stem}-latin1.jsonl", b'{"prompt": "caf\xe9", "response": "x"}\n'),
        "binary": ws.bytes(f"{stem}-binary.jsonl", BINARY),
        "notgz": ws.bytes(f"{stem}-notgz.jsonl.gz", b'{"prompt": "x"}\n'),
        "dir": ws.dir(f"{stem}-dir.jsonl"),
        "parquet": ws.bytes(f"{stem}-corrupt.parquet", b"PAR1 this is not parquet PAR1"),
        "scalar": ws.text(f"{stem}-scalar.json", "5"),
    }


# ---- the matrix: (case id, builder(ws) -> (argv, substrings the error line must contain)) ---------
def _judge_in(ws, path, *extra):
    return ["judge", "--input", path, "--output", "out.jsonl", *extra]


def _annot_cfg(ws, name, body):
    return ws.text(f"{name}.yaml", body)


def _annotate(ws, name, input_path, extra=""):
    return ["annotate", "--config", _annot_cfg(ws, name, f"input: {input_path}\noutput_dir: {ws.root / 'ann-out'}\n{extra}")]


DEAD = "judge: {backend: openai, model: m, base_urls: ['http://127.0.0.1:9/v1'], max_retries: 0, timeout_s: 2}\nretries: 0\n"


def _arena_run(ws, name, rec):
    """A run folder with one judgment file (and answers for model m and the baselines)."""
    data = ws.dir("arena-data")
    for model in ("m", "o3-mini-2025-01-31", "gemini-2.0-flash-001"):
        ws.jsonl(f"arena-data/model_answer/{model}.jsonl",
                 [{"uid": "u1", "messages": [{"role": "assistant", "content": {"answer": "An answer."}}]}])
    ws.text("arena-data/question.jsonl", json.dumps({"uid": "u1", "category": "hard_prompt", "prompt": "Q?"}) + "\n")
    run = ws.dir(name)
    body = rec if isinstance(rec, bytes) else (rec if isinstance(rec, str) else json.dumps(rec)).encode() + b"\n"
    ws.bytes(f"{name}/model_judgment/j/m.jsonl", body)
    return run, data


def _score(ws, name, rec, *extra):
    run, data = _arena_run(ws, name, rec)
    return ["arena", "score", "--judge", "j", "--run-dir", run, "--data", data, *extra]


GOOD_GAMES = {"uid": "u1", "model": "m", "category": "hard_prompt", "games": [{"score": "A>B"}, {"score": "B>A"}]}
POLICY = "/dev/null"  # replaced per case by a copy of configs/policy_embedded.yaml


def _policy_cfg(ws, extra: str = "") -> Path:
    src = Path(__file__).resolve().parents[1] / "configs" / "policy_embedded.yaml"
    return ws.text("policy.yaml", src.read_text(encoding="utf-8") + extra)


def _tj_cfg(ws, annotations) -> Path:
    return ws.text("tj.yaml", f"variant: non_reasoning\nformat: pointwise\nbase_model: smollm2-135m-instruct\n"
                              f"annotations: {annotations}\n")


def _probe(ws, items, *extra):
    return ["probe", "--judge", "smollm2-135m-instruct", "--items", items, "--run-dir", "probe-run", *extra]


def _winrate(ws, folder, *extra):
    return ["winrate", "--annotations", folder, "--no-lc", *extra]


def _good_ann(ws, stem="ann"):
    return ws.jsonl(f"{stem}/m.jsonl", [{"instruction": "i", "output_2": "o", "preference": 1.5}]).parent


CASES = {
    # judge --input / --output / --judge / --set
    "judge-input-latin1": lambda ws: (_judge_in(ws, bad_files(ws, "j")["latin1"]), ["j-latin1.jsonl", "UTF-8"]),
    "judge-input-binary": lambda ws: (_judge_in(ws, bad_files(ws, "j")["binary"]), ["j-binary.jsonl:1"]),
    "judge-input-notgz": lambda ws: (_judge_in(ws, bad_files(ws, "j")["notgz"]), ["j-notgz.jsonl.gz", "gzip"]),
    "judge-input-dir": lambda ws: (_judge_in(ws, bad_files(ws, "j")["dir"]), ["j-dir.jsonl", "folder"]),
    "judge-input-truncated-gz": lambda ws: (_judge_in(ws, ws.bytes("t.jsonl.gz", gzip.compress(b'{"prompt": "p"}\n' * 50)[:40])),
                                            ["t.jsonl.gz", "gzip"]),
    "judge-input-missing": lambda ws: (_judge_in(ws, "nope.jsonl"), ["nope.jsonl", "not found"]),
    "judge-input-scalar-line": lambda ws: (_judge_in(ws, ws.text("s.jsonl", "5\n")), ["s.jsonl:1", "object"]),
    "judge-input-empty": lambda ws: (_judge_in(ws, ws.text("e.jsonl", "\n")), ["e.jsonl", "no records"]),
    "judge-input-no-prompt": lambda ws: (_judge_in(ws, ws.jsonl("np.jsonl", [{"response": "x"}])), ["np.jsonl:1", "prompt"]),
    "judge-output-dir": lambda ws: (["judge", "--input", ws.jsonl("g.jsonl", GOOD_POINT), "--output", ws.dir("outdir")],
                                    ["--output", "outdir", "folder"]),
    "judge-output-parent-file": lambda ws: (["judge", "--input", ws.jsonl("g.jsonl", GOOD_POINT), "--output",
                                             f"{ws.text('afile', 'x')}/o.jsonl"], ["afile", "is a file"]),
    "judge-run-dir-file": lambda ws: (_judge_in(ws, ws.jsonl("g.jsonl", GOOD_POINT), "--run-dir", ws.text("rd", "x")),
                                      ["--run-dir", "rd", "is a file"]),
    "judge-set-conflict": lambda ws: (_judge_in(ws, ws.jsonl("g.jsonl", GOOD_POINT), "--set", "mode=reasoning",
                                                "--set", "mode.x=1"), ["mode=reasoning", "mode.x=1", "once"]),
    "judge-set-no-equals": lambda ws: (_judge_in(ws, ws.jsonl("g.jsonl", GOOD_POINT), "--set", "mode"), ["'mode'", "key=value"]),
    "judge-set-unknown-field": lambda ws: (_judge_in(ws, ws.jsonl("g.jsonl", GOOD_POINT), "--set", "colour=red"), ["colour"]),
    "judge-yaml-latin1": lambda ws: (_judge_in(ws, ws.jsonl("g.jsonl", GOOD_POINT), "--judge", ws.bytes("j.yaml", NOT_UTF8)),
                                     ["j.yaml", "UTF-8"]),
    "judge-yaml-dir": lambda ws: (_judge_in(ws, ws.jsonl("g.jsonl", GOOD_POINT), "--judge", ws.dir("jd.yaml")),
                                  ["jd.yaml", "folder"]),
    "judge-yaml-scalar": lambda ws: (_judge_in(ws, ws.jsonl("g.jsonl", GOOD_POINT), "--judge", ws.text("js.yaml", "7\n")),
                                     ["js.yaml", "mapping"]),
    "judge-unknown-model": lambda ws: (_judge_in(ws, ws.jsonl("g.jsonl", GOOD_POINT), "--judge", "no-such-model"),
                                       ["no-such-model"]),
    # annotate
    "annotate-yaml-latin1": lambda ws: (["annotate", "--config", ws.bytes("a.yaml", NOT_UTF8)], ["a.yaml", "UTF-8"]),
    "annotate-yaml-binary": lambda ws: (["annotate", "--config", ws.bytes("a.yaml", BINARY)], ["a.yaml", "UTF-8"]),
    "annotate-input-latin1": lambda ws: (_annotate(ws, "a", bad_files(ws, "ai")["latin1"]), ["ai-latin1.jsonl", "UTF-8"]),
    "annotate-input-binary": lambda ws: (_annotate(ws, "a", bad_files(ws, "ai")["binary"]), ["ai-binary.jsonl:1"]),
    "annotate-input-notgz": lambda ws: (_annotate(ws, "a", bad_files(ws, "ai")["notgz"]), ["ai-notgz.jsonl.gz", "gzip"]),
    "annotate-input-dir": lambda ws: (_annotate(ws, "a", bad_files(ws, "ai")["dir"]), ["ai-dir.jsonl", "Hugging Face"]),
    "annotate-input-parquet": lambda ws: (_annotate(ws, "a", bad_files(ws, "ai")["parquet"]), ["ai-corrupt.parquet", "Parquet"]),
    "annotate-input-scalar-json": lambda ws: (_annotate(ws, "a", bad_files(ws, "ai")["scalar"]), ["ai-scalar.json", "number"]),
    "annotate-input-list-of-scalars": lambda ws: (_annotate(ws, "a", ws.text("l.json", "[1, 2]")), ["l.json", "record 1"]),
    "annotate-output-dir-is-file": lambda ws: (["annotate", "--config", _annot_cfg(
        ws, "a", f"input: {ws.jsonl('items.jsonl', GOOD_ITEMS)}\noutput_dir: {ws.text('ofile', 'x')}\n")],
        ["output_dir", "ofile", "is a file"]),
    "annotate-set-conflict": lambda ws: (_annotate(ws, "a", ws.jsonl("items.jsonl", GOOD_ITEMS)) + [
        "--set", "judge.mode=direct", "--set", "judge.mode.x=1"], ["judge.mode=direct", "once"]),
    "annotate-items-no-prompt": lambda ws: (_annotate(ws, "a", ws.jsonl("np.jsonl", [{"responses": ["x"]}])), ["np.jsonl"]),
    "annotate-efforts-without-kinds": lambda ws: (_annotate(ws, "a", ws.jsonl("items.jsonl", GOOD_ITEMS),
                                                            "kinds: [rubric]\nefforts: [low]\n"), ["efforts"]),
    "annotate-garbage-work-table": lambda ws: (
        _annotate(ws, "a", ws.jsonl("items.jsonl", GOOD_ITEMS), "kinds: [pointwise]\n" + DEAD)
        if ws.text("ann-out/work.sqlite", "not a database" * 100) else None, ["work.sqlite"]),
    # validate
    "validate-latin1": lambda ws: (["validate", ws.bytes("v.yaml", NOT_UTF8)], ["v.yaml", "UTF-8"]),
    "validate-binary": lambda ws: (["validate", ws.bytes("v.yaml", BINARY)], ["v.yaml", "UTF-8"]),
    "validate-dir": lambda ws: (["validate", ws.dir("v.yaml")], ["v.yaml", "folder"]),
    "validate-scalar": lambda ws: (["validate", ws.text("v.yaml", "5\n")], ["v.yaml", "mapping"]),
    "validate-bad-yaml": lambda ws: (["validate", ws.text("v.yaml", "a: [1, 2\n")], ["v.yaml", "YAML"]),
    "validate-unknown-kind": lambda ws: (["validate", ws.text("v.yaml", "kind: banana\n")], ["v.yaml", "banana"]),
    "validate-empty": lambda ws: (["validate", ws.text("v.yaml", "")], ["v.yaml", "kind"]),
    "validate-missing": lambda ws: (["validate", "nope.yaml"], ["nope.yaml", "not found"]),
    # train-policy --dry-run
    "policy-dry-latin1": lambda ws: (["train-policy", "--config", ws.bytes("p.yaml", NOT_UTF8), "--dry-run"], ["p.yaml", "UTF-8"]),
    "policy-dry-set-conflict": lambda ws: (["train-policy", "--config", _policy_cfg(ws), "--dry-run", "--set", "grpo=4",
                                            "--set", "grpo.max_steps=3"], ["grpo=4", "grpo.max_steps=3"]),
    "policy-dry-bad-value": lambda ws: (["train-policy", "--config", _policy_cfg(ws), "--dry-run", "--set",
                                         "grpo.max_steps=-3"], ["grpo.max_steps"]),
    "policy-dry-judge-yaml-missing": lambda ws: (["train-policy", "--config", _policy_cfg(ws), "--dry-run", "--set",
                                                  "judge=nope.yaml"], ["nope.yaml"]),
    # train-judge (dry run and real: refused before any model loads)
    "train-judge-no-data": lambda ws: (["train-judge", "--config", _tj_cfg(ws, "nope"), "--dry-run"], ["nope", "annotate"]),
    "train-judge-data-is-file": lambda ws: (["train-judge", "--config", _tj_cfg(ws, ws.text("df", "x"))], ["df", "not a folder"]),
    "train-judge-garbage-manifest": lambda ws: (["train-judge", "--config", _tj_cfg(
        ws, ws.text("tj-ann/manifest.json", "garbage{").parent)], ["manifest.json", "malformed JSON"]),
    "train-judge-manifest-list": lambda ws: (["train-judge", "--config", _tj_cfg(
        ws, ws.text("tj-ann/manifest.json", "[1]").parent), "--dry-run"], ["manifest.json", "JSON object"]),
    "train-judge-corrupt-rows": lambda ws: (["train-judge", "--config", _tj_cfg(ws, ws.bytes(
        "tj-ann/pointwise.jsonl", b'{"item_id": "\xff"}\n').parent if ws.json("tj-ann/manifest.json", {"version": 1})
        else None), "--dry-run"], ["pointwise.jsonl", "UTF-8"]),
    # eval-judge
    "eval-judge-no-data": lambda ws: (["eval-judge", "--judge", "smollm2-135m-instruct", "--data", "nope", "--run-dir", "ev"],
                                      ["nope"]),
    "eval-judge-garbage-manifest": lambda ws: (["eval-judge", "--judge", "smollm2-135m-instruct", "--data",
                                                ws.text("ev-ann/manifest.json", "garbage{").parent, "--run-dir", "ev"],
                                               ["manifest.json", "malformed JSON"]),
    "eval-judge-latin1-manifest": lambda ws: (["eval-judge", "--judge", "smollm2-135m-instruct", "--data",
                                               ws.bytes("ev-ann/manifest.json", b'{"x": "\xe9"}').parent, "--run-dir", "ev"],
                                              ["manifest.json", "UTF-8"]),
    "eval-judge-unknown-human": lambda ws: (["eval-judge", "--judge", "smollm2-135m-instruct", "--human", "nope",
                                             "--run-dir", "ev"], ["nope"]),
    "eval-judge-human-missing": lambda ws: (["eval-judge", "--judge", "smollm2-135m-instruct", "--human", "pandalm",
                                             "--run-dir", "ev"], ["pandalm", "not found"]),
    "eval-judge-run-dir-file": lambda ws: (["eval-judge", "--judge", "smollm2-135m-instruct", "--data",
                                            ws.text("ev-ann/manifest.json", "{}").parent, "--run-dir", ws.text("evf", "x")],
                                           ["evf", "is a file"]),
    # winrate
    "winrate-missing-folder": lambda ws: (_winrate(ws, "nope"), ["nope", "not found"]),
    "winrate-notgz": lambda ws: (_winrate(ws, ws.bytes("wa/m.jsonl.gz", b"not gzip").parent), ["m.jsonl.gz", "gzip"]),
    "winrate-latin1": lambda ws: (_winrate(ws, ws.bytes("wa/m.jsonl", b'{"instruction": "\xe9"}\n').parent), ["m.jsonl:1", "UTF-8"]),
    "winrate-malformed": lambda ws: (_winrate(ws, ws.text("wa/m.jsonl", '{"instruction": \n').parent), ["m.jsonl:1", "malformed"]),
    "winrate-scalar-json": lambda ws: (_winrate(ws, ws.text("wa/m.json", "5").parent), ["m.json", "JSON list"]),
    "winrate-bad-preference": lambda ws: (_winrate(ws, ws.jsonl("wa/m.jsonl", [{"instruction": "i", "output_2": "o",
                                                                               "preference": "x"}]).parent),
                                          ["m.jsonl", "preference"]),
    "winrate-missing-fields": lambda ws: (_winrate(ws, ws.jsonl("wa/m.jsonl", [{"instruction": "i"}]).parent),
                                          ["m.jsonl", "output_2"]),
    "winrate-out-dir": lambda ws: (_winrate(ws, _good_ann(ws), "--out", ws.dir("outd")), ["--out", "outd", "folder"]),
    "winrate-out-parent-file": lambda ws: (_winrate(ws, _good_ann(ws), "--out", f"{ws.text('wf', 'x')}/t.md"), ["wf", "is a file"]),
    "winrate-reference-corrupt": lambda ws: (["winrate", "--annotations", _good_ann(ws), "--reference",
                                              ws.bytes("ref.json.gz", b"nope")], ["ref.json.gz", "gzip"]),
    "winrate-leaderboard-binary": lambda ws: (_winrate(ws, _good_ann(ws), "--leaderboard", ws.bytes("lb.csv", BINARY)),
                                              ["lb.csv"]),
    "winrate-leaderboard-columns": lambda ws: (_winrate(ws, _good_ann(ws), "--leaderboard", ws.text("lb.csv", "a,b\n1,2\n")),
                                               ["lb.csv", "win_rate"]),
    # arena score
    "arena-score-no-model": lambda ws: (_score(ws, "ar", {k: v for k, v in GOOD_GAMES.items() if k != "model"}),
                                        ["m.jsonl:1", "'model'"]),
    "arena-score-no-uid": lambda ws: (_score(ws, "ar", {k: v for k, v in GOOD_GAMES.items() if k != "uid"}),
                                      ["m.jsonl:1", "'uid'"]),
    "arena-score-unknown-label": lambda ws: (_score(ws, "ar", {**GOOD_GAMES, "games": [{"score": "A>>>B"}, None]}),
                                             ["m.jsonl:1", "A>>>B"]),
    "arena-score-games-not-list": lambda ws: (_score(ws, "ar", {**GOOD_GAMES, "games": 5}), ["m.jsonl:1", "games"]),
    "arena-score-game-not-object": lambda ws: (_score(ws, "ar", {**GOOD_GAMES, "games": ["A>B"]}), ["m.jsonl:1", "game 1"]),
    "arena-score-latin1": lambda ws: (_score(ws, "ar", b'{"uid": "\xe9"}\n'), ["m.jsonl:1", "UTF-8"]),
    "arena-score-malformed": lambda ws: (_score(ws, "ar", '{"uid": '), ["m.jsonl:1", "malformed"]),
    "arena-score-out-csv-dir": lambda ws: (_score(ws, "ar", GOOD_GAMES, "--out", ws.dir("lb.csv").with_suffix("")),
                                           ["--out", "lb.csv", "folder"]),
    "arena-score-level": lambda ws: (_score(ws, "ar", GOOD_GAMES, "--level", "5"), ["level"]),
    "arena-score-no-judge": lambda ws: (_score(ws, "ar", GOOD_GAMES)[:2] + ["--judge", "nobody"] + _score(ws, "ar", GOOD_GAMES)[4:],
                                        ["nobody"]),
    "arena-score-answers-garbage": lambda ws: (_score(ws, "ar", GOOD_GAMES) if ws.jsonl(
        "ar/model_answer/m.jsonl", [{"uid": "u1"}]) else None, ["m.jsonl:1", "messages"]),
    # arena answer / judge: refused before any model or run folder
    "arena-answer-no-data": lambda ws: (["arena", "answer", "--model", "smollm2-135m-instruct", "--run-dir", "arx",
                                         "--data", "nodata"], ["nodata"]),
    "arena-judge-no-answers": lambda ws: (["arena", "judge", "--judge", "smollm2-135m-instruct", "--model", "ghost",
                                           "--run-dir", "ary", "--data", _arena_run(ws, "ar", GOOD_GAMES)[1]], ["ghost"]),
    # probe
    "probe-items-latin1": lambda ws: (_probe(ws, ws.bytes("pi.jsonl", b'{"prompt": "\xe9"}\n')), ["pi.jsonl", "UTF-8"]),
    "probe-items-notgz": lambda ws: (_probe(ws, ws.bytes("pi.json.gz", b"[]")), ["pi.json.gz", "gzip"]),
    "probe-items-dir": lambda ws: (_probe(ws, ws.dir("pidir")), ["pidir", "folder"]),
    "probe-items-scalars": lambda ws: (_probe(ws, ws.text("pi.json", "[5, 6]")), ["pi.json", "record 1"]),
    "probe-items-unusable": lambda ws: (_probe(ws, ws.jsonl("pi.jsonl", [{"x": 1}])), ["pi.jsonl", "no usable items"]),
    "probe-attacks-latin1": lambda ws: (_probe(ws, ws.jsonl("pg.jsonl", [{"prompt": "p", "answer": "a"}]), "--attacks",
                                               ws.bytes("att.yaml", NOT_UTF8)), ["att.yaml", "UTF-8"]),
    "probe-attacks-no-list": lambda ws: (_probe(ws, ws.jsonl("pg.jsonl", [{"prompt": "p", "answer": "a"}]), "--attacks",
                                                ws.text("att.yaml", "attacks: 3\n")), ["att.yaml", "attacks"]),
    "probe-only-unknown": lambda ws: (_probe(ws, ws.jsonl("pg.jsonl", [{"prompt": "p", "answer": "a"}]), "--only", "nope"),
                                      ["nope"]),
    "probe-level": lambda ws: (_probe(ws, ws.jsonl("pg.jsonl", [{"prompt": "p", "answer": "a"}]), "--level", "5"), ["level"]),
    "probe-run-dir-file": lambda ws: (["probe", "--judge", "smollm2-135m-instruct", "--items", ws.jsonl(
        "pg.jsonl", [{"prompt": "p", "answer": "a"}]), "--run-dir", ws.text("prf", "x")], ["prf", "is a file"]),
    "probe-judge-yaml-latin1": lambda ws: (["probe", "--judge", ws.bytes("pj.yaml", NOT_UTF8), "--items", ws.jsonl(
        "pg.jsonl", [{"prompt": "p", "answer": "a"}]), "--run-dir", "probe-run"], ["pj.yaml", "UTF-8"]),
    # report
    "report-missing": lambda ws: (["report", "nope"], ["nope", "not found"]),
    "report-file": lambda ws: (["report", ws.text("rf", "x")], ["rf", "is a file"]),
    "report-monitor-malformed": lambda ws: (["report", ws.text("rr/monitor.jsonl", "garbage{\n").parent], ["monitor.jsonl:1"]),
    "report-monitor-latin1": lambda ws: (["report", ws.bytes("rr/monitor.jsonl", b'{"step": "\xe9"}\n').parent],
                                         ["monitor.jsonl:1", "UTF-8"]),
    "report-monitor-no-step": lambda ws: (["report", ws.jsonl("rr/monitor.jsonl", [{"x": 1}]).parent], ["monitor.jsonl", "step"]),
    "report-eval-malformed": lambda ws: (["report", ws.text("rr/eval.json", "garbage{").parent], ["eval.json", "malformed"]),
    "report-stage-record-list": lambda ws: (["report", ws.text("rr/stage-x.json", "[1]").parent], ["stage-x.json", "JSON object"]),
    "report-probe-bad-attacks": lambda ws: (["report", ws.json("rr/probe-j.json", {"judge": "j", "format": "pointwise",
                                                                                 "attacks": [1]}).parent], ["probe-j.json"]),
    "report-alarm-garbage": lambda ws: (["report", ws.text("rr/alarm.json", "{").parent if ws.jsonl(
        "rr/monitor.jsonl", [{"step": 0, "proxy_mean": 1.0, "gold_mean": 1.0}]) else None], ["alarm.json"]),
    "report-ledger-garbage": lambda ws: (["report", ws.text("rr/ledger.sqlite", "not a database" * 100).parent], ["ledger.sqlite"]),
    "report-heldout-shape": lambda ws: (["report", ws.json("rr/heldout/scores.json", {"policies": [1], "prompts": 3}).parents[1]],
                                        ["scores.json", "policies"]),
    # quickstart --dry-run, models
    "quickstart-dry-latin1": lambda ws: (["quickstart", "--config", ws.bytes("q.yaml", NOT_UTF8), "--dry-run"], ["q.yaml", "UTF-8"]),
    "quickstart-dry-set-conflict": lambda ws: (["quickstart", "--dry-run", "--set", "policy_steps=4", "--set",
                                                "policy_steps.x=1"], ["policy_steps=4"]),
    "quickstart-dry-scale-conflict": lambda ws: (["quickstart", "--dry-run", "--scale", "ci", "--set", "scale=full"], ["scale"]),
    "models-fetch-unknown": lambda ws: (["models", "fetch", "nope"], ["nope"]),
    "serve-yaml-latin1": lambda ws: (["serve", "--config", ws.bytes("s.yaml", NOT_UTF8)], ["s.yaml", "UTF-8"]),
    "serve-set-conflict": lambda ws: (["serve", "--judge", "smollm2-135m-instruct", "--set", "port=1", "--set",
                                       "port.x=2"], ["port=1"]),
    "serve-no-source": lambda ws: (["serve"], ["--config"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_in_one_line(ws, case):
    args, names = CASES[case](ws)
    refused(ws, args, *names)


def test_matrix_size_and_coverage():
    verbs = {c.split("-")[0] for c in CASES}
    assert len(CASES) >= 60
    assert {"judge", "annotate", "validate", "policy", "train", "eval", "winrate", "arena", "probe", "report",
            "quickstart", "models"} <= verbs


# ---- runs that did work and still produced nothing usable, and the real entry point -------------
class FakeJudgeServer:
    """A local OpenAI-compatible server whose answer is chosen per request by `reply(body) -> (status, bytes)`."""

    def __init__(self, reply):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.calls = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(h):
                body = json.loads(h.rfile.read(int(h.headers.get("Content-Length", 0))) or b"{}")
                self.calls += 1
                status, data = reply(body)
                h.send_response(status)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(len(data)))
                h.end_headers()
                h.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(text: str) -> bytes:
    return json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}).encode()


def served_annotate(ws, url: str, extra: str = "", items=None) -> list:
    items = items or [{"id": f"i{k}", "prompt": f"Say hi {k}.", "responses": ["Hi!", "Hello."]} for k in range(3)]
    return ["annotate", "--config", ws.text("a.yaml", (
        f"input: {ws.jsonl('items.jsonl', items)}\noutput_dir: {ws.root / 'ann-out'}\nkinds: [pointwise]\n"
        f"retries: 0\ninvalid_retries: 0\njudge: {{backend: openai, model: m, base_urls: ['{url}'], max_retries: 0, "
        f"logprobs: false, timeout_s: 5}}\n" + extra))]


@pytest.mark.parametrize("what", ["dead endpoint", "401"])
def test_annotation_that_produced_nothing_usable_exits_non_zero(ws, what):
    server = None
    if what == "401":
        server = FakeJudgeServer(lambda body: (401, b'{"error": {"message": "bad key"}}'))
    url = server.url if server else "http://127.0.0.1:9/v1"
    try:
        code, out, err = run_cli(served_annotate(ws, url))
    finally:
        if server:
            server.close()
    last = [ln for ln in err.splitlines() if ln.strip()][-1]
    assert code == 2 and "Traceback" not in err
    assert [ln for ln in err.splitlines() if ln.startswith("error:")] == [last]
    want = "http 401" if what == "401" else "connection error"
    assert last.startswith("error: annotation produced no usable labels (pointwise: 6 judge call failed") and want in last
    assert "--retry-failed" in last and "annotations:" in out  # the summary still printed; the work is kept for a retry
    assert json.loads((ws.root / "ann-out" / "manifest.json").read_text())["counts"]["pointwise_valid"] == 0


def test_effort_failures_are_not_disagreements_and_reach_the_manifest(ws):
    """Main labels all valid; the low-effort call fails for one item: agreement is over the compared pairs."""
    def reply(body):
        if body.get("reasoning_effort") == "low" and "Say hi 1." in json.dumps(body):
            return 500, b'{"error": {"message": "boom"}}'
        return 200, completion("Score: 7")

    server = FakeJudgeServer(reply)
    try:
        code, out, err = run_cli(served_annotate(ws, server.url, "efforts: [low]\n"))
    finally:
        server.close()
    assert code == 0, err
    man = json.loads((ws.root / "ann-out" / "manifest.json").read_text())
    rep = man["effort_filter"]["low"]["pointwise"]
    assert (rep["judged"], rep["compared"], rep["kept"], rep["kept_rate"]) == (6, 4, 4, 1.0)
    assert man["failures"] == {"pointwise@low": {"judge call failed (http 500)": 2}}
    assert "4/4 agree with high (100.0%), 2 not compared (failed)" in out


def test_rubric_text_is_validated_like_a_verdict(ws):
    """A stray `Score: 12` is not a rubric: re-asked (sampling judge), then the unit fails; never copied on."""
    from judgerl.annotate.run import rubric_problem

    assert rubric_problem("Score: 12") == "rubric contains a verdict line"
    assert rubric_problem("  ") == "empty rubric"
    assert rubric_problem("- nice").startswith("rubric too short")
    assert rubric_problem("- Answers the question directly\n- Uses a friendly greeting\n- Stays short") is None
    asked = []

    def reply(body):
        text = json.dumps(body)
        if "grading rubrics" in text:
            asked.append(1)
            return 200, completion("Score: 12")
        return 200, completion("Score: 7")

    server = FakeJudgeServer(reply)
    try:
        code, out, err = run_cli(served_annotate(ws, server.url, "kinds: [rubric, pointwise]\nrubric_conditioned: true\n"
                                                 "invalid_retries: 1\n", items=[{"id": "a", "prompt": "Say hi.",
                                                                                    "responses": ["Hi!"]}])
                                 [:3] + ["--set", "judge.sampling.temperature=0.7"])
    finally:
        server.close()
    assert len(asked) == 2  # asked, then re-asked once (invalid_retries: 1)
    rub = [json.loads(x) for x in (ws.root / "ann-out" / "rubrics.jsonl").read_text().splitlines()]
    assert rub[0]["valid"] is False and rub[0]["rubric"] is None and "invalid verdict" in rub[0]["error"]
    point = [json.loads(x) for x in (ws.root / "ann-out" / "pointwise.jsonl").read_text().splitlines()]
    assert point[0]["rubric"] is None and point[0]["valid"] is False and "no rubric" in point[0]["error"]
    assert code == 2 and "no usable labels" in err  # nothing usable came out of this run


def test_openai_backend_retries_a_truncated_json_body():
    from judgerl.judges import Judge, JudgeRequest, JudgeSpec

    state = {"n": 0}

    def reply(body):
        state["n"] += 1
        cut = state["n"] == 1 or state["n"] <= 0  # the first body, then (n reset below) every body
        return 200, (completion("Score: 7")[:37] if cut else completion("Score: 7"))

    server = FakeJudgeServer(reply)
    try:
        spec = JudgeSpec(backend="openai", model="m", base_urls=[server.url], max_retries=2, logprobs=False, cache=False)
        v = Judge(spec).judge([JudgeRequest(prompt="p", responses=["r"])])[0]
        state["n"] = -10  # always truncated from now on
        w = Judge(spec.model_copy(update={"max_retries": 1})).judge([JudgeRequest(prompt="q", responses=["r"])])[0]
    finally:
        server.close()
    assert v.valid and v.label == 7 and v.retries == 1
    assert not w.valid and w.retries == 1 and w.error.startswith("truncated JSON body")


def test_judge_output_folder_is_refused_before_any_judge_call(ws):
    """The issue's case: --output a folder used to fail after every judge call and leave a stray .tmp."""
    server = FakeJudgeServer(lambda body: (200, completion("Score: 7")))
    try:
        spec = ws.text("j.yaml", f"backend: openai\nmodel: m\nbase_urls: ['{server.url}']\nlogprobs: false\n")
        refused(ws, ["judge", "--judge", spec, "--input", ws.jsonl("g.jsonl", GOOD_POINT), "--output", ws.dir("o")],
                "--output", "folder")
    finally:
        server.close()
    assert server.calls == 0


@pytest.mark.parametrize("args", [["validate", "NOT_UTF8"], ["judge", "--input", "nope.jsonl", "--output", "o.jsonl"]])
def test_real_entry_point_prints_one_line(ws, args):
    args = [str(ws.bytes("v.yaml", NOT_UTF8)) if a == "NOT_UTF8" else a for a in args]
    r = subprocess.run([sys.executable, "-m", "judgerl.cli", *args], capture_output=True, text=True, cwd=ws.root)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error:")


@pytest.mark.skipif(ROOT_USER, reason="root reads and writes files whatever their permissions")
def test_unreadable_input_and_unwritable_output(ws):
    p = ws.jsonl("g.jsonl", GOOD_POINT)
    p.chmod(0)
    ro = ws.dir("ro")
    ro.chmod(0o500)
    try:
        refused(ws, _judge_in(ws, p), "g.jsonl", "not readable")
        refused(ws, ["judge", "--input", ws.jsonl("h.jsonl", GOOD_POINT), "--output", ro / "o.jsonl"], "ro", "not writable")
    finally:
        p.chmod(0o600)
        ro.chmod(0o700)


@pytest.mark.parametrize("responses", [["Hi!"], ["Hi!", "Hello.", "Hey."]])
def test_pairwise_skips_items_without_two_responses_up_front(ws, responses):
    """{prompt, response} or 3-response items with the default kinds: pairwise skips them before any call
    (it used to run every judge call and then die with KeyError: 'consistent')."""
    def reply(body):
        return 200, completion("Preferred: 1" if "Preferred" in json.dumps(body) else "Score: 6")

    server = FakeJudgeServer(reply)
    items = [{"id": f"i{k}", "prompt": f"Say hi {k}.", "responses": responses} for k in range(2)]
    try:
        args = served_annotate(ws, server.url, items=items)
        cfg = Path(args[2])
        cfg.write_text(cfg.read_text().replace("kinds: [pointwise]\n", ""))  # the default kinds, pairwise included
        code, out, err = run_cli(args)
    finally:
        server.close()
    assert code == 0 and "Traceback" not in err, err
    man = json.loads((ws.root / "ann-out" / "manifest.json").read_text())
    assert man["input_info"]["pairwise_skipped"] == 2 and man["counts"]["pairwise"] == 0
    assert man["counts"]["pairwise_consistent"] == 0 and man["counts"]["pointwise_valid"] == 2 * len(responses)
    assert server.calls == 2 + 2 * len(responses)  # rubrics + pointwise; not one pairwise call
