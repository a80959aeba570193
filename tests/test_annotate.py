"""`judgerl annotate`: end to end on the real SmolLM2, kill -9 + resume, fault injection, bad input.

Items are the shortest LLMBar Natural pairs (real instructions and responses) so the CPU-only model
stays fast. The fake OpenAI-compatible server below exists only for fault injection.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from judgerl import JudgerlError
from judgerl.annotate import AnnotateConfig, run_annotate
from judgerl.annotate.config import labels_fingerprint, load_config_items
from judgerl.annotate.work import WorkTable
from judgerl.annotate.dataset import load_annotations, load_manifest, split_of
from judgerl.data import read_jsonl
from judge_testdata import SHORT_PAIRWISE, SHORT_POINTWISE, short_templates


def llmbar_items(shared_data: Path, n: int) -> list[dict]:
    rows = json.loads((shared_data / "llmbar" / "Natural.json").read_text())
    rows = sorted(enumerate(rows), key=lambda r: len(r[1]["input"]) + len(r[1]["output_1"]) + len(r[1]["output_2"]))
    return [{"id": f"natural-{i}", "prompt": r["input"], "responses": [r["output_1"], r["output_2"]],
             "human_label": r["label"]} for i, r in rows[:n]]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def cfg_for(tmp: Path, items: Path, model: str, **kw) -> AnnotateConfig:
    judge = {"name": "smol", "backend": "hf", "model": model, "mode": "direct", "device": "cpu",
             "dtype": "float32", "batch_size": 4, "sampling": {"max_new_tokens": 16}}
    judge.update(kw.pop("judge", {}))
    data = {"input": str(items), "output_dir": str(tmp / "out"), "judge": judge, "batch_size": 4,
            "rubric_max_new_tokens": 12, "invalid_retries": 0, "templates": short_templates(tmp), **kw}
    return AnnotateConfig.model_validate(data)


# ---- end to end on the embedded model ------------------------------------------------------
def test_end_to_end_embedded(smollm2, smollm2_path, shared_data, tmp_path):
    m, t = smollm2
    items = llmbar_items(shared_data, 20)
    cfg = cfg_for(tmp_path, write_jsonl(tmp_path / "items.jsonl", items), str(smollm2_path),
                  kinds=["pointwise", "pairwise", "rubric"], rubric_conditioned=True, split_seed=3)
    man = run_annotate(cfg, model=m, tokenizer=t, progress=False)
    out = Path(cfg.output_dir)

    point = load_annotations(out, "pointwise", valid_only=False)
    pair = load_annotations(out, "pairwise", valid_only=False)
    rubrics = load_annotations(out, "rubrics", valid_only=False)
    assert sorted((r["item_id"], r["response_idx"]) for r in point) == \
        sorted((it["id"], k) for it in items for k in (0, 1))
    assert sorted(r["item_id"] for r in pair) == sorted(it["id"] for it in items)
    assert sorted(r["item_id"] for r in rubrics) == sorted(it["id"] for it in items)
    c = man["counts"]
    assert (c["items"], c["pointwise"], c["pairwise"], c["rubrics"]) == (20, 40, 20, 20)
    assert c["pointwise_valid"] == sum(r["valid"] for r in point)
    assert c["pairwise_valid"] == sum(r["valid"] for r in pair)
    assert c["pairwise_consistent"] == sum(r["consistent"] for r in pair)
    assert man["invalid_rate"]["pointwise"] == pytest.approx(1 - c["pointwise_valid"] / 40)
    assert man["tokens"]["pointwise"]["in"] == sum(r["tokens_in"] for r in point) > 0
    assert load_manifest(out) == man and man["judge"]["model"] == str(smollm2_path)
    assert len(man["template_sha256"]) == 64 and set(man["templates_sha256"]) == {"pointwise", "pairwise", "rubric"}
    assert man["templates_sha256"]["pairwise"] == hashlib.sha256(SHORT_PAIRWISE.encode()).hexdigest()
    # the embedded model answers with a parseable verdict in direct mode
    assert c["pointwise_valid"] >= 30 and c["pairwise_valid"] >= 15
    for r in point:
        if r["valid"]:
            assert r["score"] in range(10) and 0.0 <= r["expected"] <= 9.0 and r["error"] is None
    for r in pair:
        assert r["consistent"] == (r["valid"] and r["label"] == r["label_swapped"])
        assert r["label"] in (1, 2, None) and r["meta"]["human_label"] in (1, 2)
    # rubrics were written by the model and passed on to the rubric-conditioned annotation
    by_item = {r["item_id"]: r["rubric"] for r in rubrics}
    assert all(r["valid"] and r["rubric"].strip() for r in rubrics)
    assert all(r["rubric"] == by_item[r["item_id"]] for r in point + pair)
    assert (out / "rubrics.jsonl").is_file()
    # deterministic splits
    splits = json.loads((out / "splits.json").read_text())
    assert splits["seed"] == 3
    for r in point:
        assert r["split"] == split_of(r["item_id"], 3, (0.8, 0.1, 0.1))
        assert r["item_id"] in splits["item_ids"][r["split"]]
    # a second run is a no-op: nothing pending, same rows
    ledger_before = sqlite3.connect(out / "ledger.sqlite").execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    man2 = run_annotate(cfg, model=m, tokenizer=t, progress=False)
    assert man2["counts"] == man["counts"]
    assert sqlite3.connect(out / "ledger.sqlite").execute("SELECT COUNT(*) FROM calls").fetchone()[0] == ledger_before


def test_reasoning_mode_effort_variants(smollm2, smollm2_path, shared_data, tmp_path):
    """Reasoning mode keeps the gold reasoning; effort variants are filtered against the main labels."""
    m, t = smollm2
    items = llmbar_items(shared_data, 2)
    cfg = cfg_for(tmp_path, write_jsonl(tmp_path / "items.jsonl", items), str(smollm2_path),
                  kinds=["pointwise"], efforts=["low"], effort_budget={"low": 0.25},
                  judge={"mode": "reasoning", "sampling": {"max_new_tokens": 8}})
    man = run_annotate(cfg, model=m, tokenizer=t, progress=False)
    out = Path(cfg.output_dir)
    point = load_annotations(out, "pointwise", valid_only=False)
    assert len(point) == 4 and any(r["reasoning"].strip() for r in point)
    assert {r["effort"] for r in point} == {"high"}
    rep = man["effort_filter"]["low"]["pointwise"]
    assert rep["judged"] == 4
    kept = read_jsonl(out / "effort-low" / "pointwise.jsonl")
    assert len(kept) == rep["kept"] and {r["effort"] for r in kept} <= {"low"}
    main = {(r["item_id"], r["response_idx"]): r["score"] for r in point}
    assert all(r["valid"] and r["score"] == main[(r["item_id"], r["response_idx"])] for r in kept)
    # the low-effort judge thinks with a quarter of the budget (2 tokens) + the forced verdict token
    assert man["effort_filter"]["low"]["pointwise"]["tokens_out"] <= 4 * 3
    assert load_manifest(out / "effort-low")["judge"]["sampling"]["max_new_tokens"] == 2


# ---- kill -9 and resume --------------------------------------------------------------------
def done_units(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM units WHERE status != 'pending'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


@pytest.mark.slow  # its annotate subprocesses load SmolLM2 (the in-process guard cannot see them)
def test_sigkill_resume_exact_record_set(smollm2_path, shared_data, tmp_path):
    items = llmbar_items(shared_data, 4)
    items.append({"id": "single", "prompt": "Name a colour.", "responses": ["Blue."]})  # pointwise only
    cfg = {"input": str(write_jsonl(tmp_path / "items.jsonl", items)), "output_dir": str(tmp_path / "out"),
           "kinds": ["pointwise", "pairwise"], "batch_size": 2, "invalid_retries": 0,
           "templates": short_templates(tmp_path),
           "judge": {"name": "smol", "backend": "hf", "model": str(smollm2_path), "mode": "direct",
                     "device": "cpu", "batch_size": 2}}
    cfg_path = tmp_path / "annotate.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    db = tmp_path / "out" / "work.sqlite"
    total = 9 + 8  # pointwise: 4*2 + 1; pairwise: 4 items * 2 orders
    cmd = [sys.executable, "-m", "judgerl.cli", "annotate", "--config", str(cfg_path)]
    rng = random.Random(1234)
    kills = 0
    # 1st kill: at a random moment of start-up; then two kills once progress passes random points
    thresholds = [None] + sorted(rng.sample(range(1, total), 2))
    for th in thresholds:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if th is None:
            time.sleep(rng.uniform(0.2, 2.0))
        else:
            while p.poll() is None and done_units(db) < th:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.3))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
    assert kills >= 1
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "pointwise" in r.stdout and "9 rows" in r.stdout

    out = tmp_path / "out"
    point = read_jsonl(out / "pointwise.jsonl")
    pair = read_jsonl(out / "pairwise.jsonl")
    keys = [(x["item_id"], x["response_idx"]) for x in point]
    assert sorted(keys) == sorted((it["id"], k) for it in items for k in range(len(it["responses"])))
    assert len(set(keys)) == len(keys) == 9
    assert sorted(x["item_id"] for x in pair) == sorted(it["id"] for it in items if len(it["responses"]) == 2)
    man = json.loads((out / "manifest.json").read_text())
    assert man["counts"]["pointwise"] == 9 and man["counts"]["pairwise"] == 4
    con = sqlite3.connect(out / "work.sqlite")
    assert con.execute("SELECT COUNT(*) FROM units WHERE status='pending'").fetchone()[0] == 0
    assert con.execute("SELECT COUNT(*) FROM units").fetchone()[0] == total
    # every exported verdict is the one recorded in the work table
    recorded = {(i, x): json.loads(res)["label"] for i, x, res in con.execute(
        "SELECT item_id, idx, result FROM units WHERE stage='pointwise' AND status='done'")}
    assert {(x["item_id"], x["response_idx"]): x["score"] for x in point if x["valid"]} == recorded
    assert not list(out.glob("*.tmp"))


# ---- fault injection -------------------------------------------------------------------------
class FlakyServer:
    """OpenAI-compatible chat endpoint: a verdict derived from the prompt, or, while `fail_rate` > 0,
    (seeded) HTTP 500s, non-JSON garbage bodies, and answers with an unparseable verdict."""

    def __init__(self, fail_rate: float, seed: int = 0):
        self.fail_rate, self.rng, self.lock = fail_rate, random.Random(seed), threading.Lock()
        self.calls: Counter = Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, code: int, body: bytes):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with outer.lock:
                    u = outer.rng.random()
                    fail = outer.fail_rate
                text = json.dumps(req["messages"])
                is_rubric = "grading rubrics" in text
                if u < fail / 3:
                    outer.calls["500"] += 1
                    return self.reply(500, b'{"error": {"message": "boom", "type": "server_error"}}')
                if u < 2 * fail / 3:
                    outer.calls["garbage"] += 1
                    return self.reply(200, b"<html>upstream proxy error</html>")
                if u < fail:
                    outer.calls["invalid"] += 1
                    content = "I refuse to grade.\nScore: banana"
                elif is_rubric:
                    outer.calls["ok"] += 1
                    content = "- follows the instruction\n- is accurate"
                else:
                    outer.calls["ok"] += 1
                    h = sum(text.encode()) % 10
                    content = f"Looks fine.\n{'Score' if 'Preferred' not in text else 'Preferred'}: " \
                              f"{h if 'Preferred' not in text else 1 + h % 2}"
                body = {"id": "x", "object": "chat.completion", "created": 0, "model": "fake",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
                self.reply(200, json.dumps(body).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_fault_injection_failures_counted_then_retried(shared_data, tmp_path):
    srv = FlakyServer(fail_rate=0.4, seed=7)
    try:
        items = llmbar_items(shared_data, 12)
        cfg = AnnotateConfig.model_validate({
            "input": str(write_jsonl(tmp_path / "items.jsonl", items)), "output_dir": str(tmp_path / "out"),
            "kinds": ["pointwise", "pairwise", "rubric"], "retries": 1, "invalid_retries": 1, "concurrency": 4,
            "batch_size": 8,
            "judge": {"name": "flaky", "backend": "openai", "model": "fake", "mode": "reasoning",
                      "base_urls": [srv.url], "max_retries": 0, "timeout_s": 10, "logprobs": False}})
        man = run_annotate(cfg, progress=False)
        assert srv.calls["500"] and srv.calls["garbage"] and srv.calls["invalid"]
        out = Path(cfg.output_dir)
        point = read_jsonl(out / "pointwise.jsonl")
        pair = read_jsonl(out / "pairwise.jsonl")
        rubrics = read_jsonl(out / "rubrics.jsonl")
        # no record silently missing: every unit has a row, failed ones with a reason
        assert len(point) == 24 and len(pair) == 12 and len(rubrics) == 12
        failed = [r for r in point + pair + rubrics if not r["valid"]]
        assert failed and all(r["error"] for r in failed)
        assert man["counts"]["failed"] == len(failed)
        reasons = {k.split(" (")[0] for f in man["failures"].values() for k in f}  # "judge call failed (http 500)"
        assert reasons <= {"judge call failed", "invalid verdict"} and reasons
        assert sum(sum(f.values()) for f in man["failures"].values()) == len(failed)
        # re-running without --retry-failed leaves them alone and calls nobody
        before = sum(srv.calls.values())
        man2 = run_annotate(cfg, progress=False)
        assert sum(srv.calls.values()) == before and man2["counts"]["failed"] == len(failed)
        # the server recovers: --retry-failed re-attempts exactly the failed units
        srv.fail_rate = 0.0
        man3 = run_annotate(cfg, retry_failed=True, progress=False)
        assert man3["counts"]["failed"] == 0
        assert man3["counts"]["pointwise_valid"] == 24 and man3["counts"]["pairwise_valid"] == 12
        assert man3["counts"]["rubrics_valid"] == 12
        unit_failures = sum(1 for r in point + rubrics if not r["valid"]) + \
            sum(("as given" in (r["error"] or "")) + ("swapped" in (r["error"] or "")) for r in pair)
        assert sum(srv.calls.values()) - before == unit_failures
        assert len(load_annotations(out, "pointwise")) == 24
    finally:
        srv.close()


# ---- bad input ---------------------------------------------------------------------------------
def base_cfg(tmp_path: Path, input_path: Path, **kw) -> AnnotateConfig:
    return AnnotateConfig.model_validate({"input": str(input_path), "output_dir": str(tmp_path / "out"),
                                          "kinds": ["pointwise", "pairwise"], **kw})


def test_malformed_row_names_line(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text('{"id": "a", "prompt": "p", "responses": ["x", "y"]}\n\n{"id": "b", "prompt": \n')
    with pytest.raises(JudgerlError, match=r"in\.jsonl:3: malformed JSON"):
        run_annotate(base_cfg(tmp_path, f), progress=False)


def test_duplicate_ids_and_missing_responses(tmp_path):
    f = write_jsonl(tmp_path / "dup.jsonl", [{"id": "a", "prompt": "p", "responses": ["x", "y"]},
                                             {"id": "a", "prompt": "q", "responses": ["x", "y"]}])
    with pytest.raises(JudgerlError, match=r"dup\.jsonl:2: duplicate id 'a' \(first at .*dup\.jsonl:1\)"):
        load_config_items(base_cfg(tmp_path, f))
    f = write_jsonl(tmp_path / "miss.jsonl", [{"id": "a", "prompt": "p", "responses": ["x", "y"]},
                                              {"id": "b", "prompt": "q"}])
    with pytest.raises(JudgerlError, match=r"miss\.jsonl:2: missing responses"):
        load_config_items(base_cfg(tmp_path, f))
    f = write_jsonl(tmp_path / "empty.jsonl", [{"id": "a", "prompt": "p", "responses": ["x", " "]}])
    with pytest.raises(JudgerlError, match=r"empty\.jsonl:1: empty response"):
        load_config_items(base_cfg(tmp_path, f))
    # prompt-only rows are fine when only rubrics are asked for
    items, _ = load_config_items(base_cfg(tmp_path, tmp_path / "miss.jsonl", kinds=["rubric"]))
    assert [it["id"] for it in items] == ["a", "b"]


def test_over_long_prompts(tmp_path, caplog):
    long_prompt = "Summarise this text. " + "word " * 200
    rows = [{"id": "short", "prompt": "Hi?", "responses": ["Hello."]},
            {"id": "long", "prompt": long_prompt, "responses": ["Ok."]},
            {"id": "chat", "prompt": [{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": long_prompt}], "responses": ["Ok."]}]
    f = write_jsonl(tmp_path / "in.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="judgerl"):
        items, info = load_config_items(base_cfg(tmp_path, f, max_prompt_chars=100, over_long="truncate"))
    assert "truncated 2 prompt(s) longer than 100" in caplog.text
    from judgerl.judges.prompts import instruction_text
    by = {it["id"]: it for it in items}
    assert by["short"]["prompt"] == "Hi?" and info["truncated"] == 2
    assert len(by["long"]["prompt"]) <= 100 and by["long"]["prompt"].startswith("Summarise this text.")
    assert len(instruction_text(by["chat"]["prompt"])) <= 100 + 20
    assert by["chat"]["prompt"][0]["content"] == "Be brief."
    assert by["long"]["meta"]["prompt_chars_before_truncation"] == len(long_prompt)
    items, info = load_config_items(base_cfg(tmp_path, f, max_prompt_chars=100, over_long="skip"))
    assert [it["id"] for it in items] == ["short"] and info["skipped_over_long"] == 2
    with pytest.raises(JudgerlError, match=r"2 prompt\(s\) longer than max_prompt_chars=100 \(first: item 'long'\)"):
        load_config_items(base_cfg(tmp_path, f, max_prompt_chars=100, over_long="refuse"))


def test_cli_bad_config_is_one_line_error(tmp_path):
    f = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "prompt": "p", "responses": ["x"]}])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"input": str(f), "output_dir": str(tmp_path / "o"),
                                   "split_fractions": [0.5, 0.2, 0.2], "kinds": ["pointwise"]}))
    r = subprocess.run([sys.executable, "-m", "judgerl.cli", "annotate", "--config", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "split_fractions must be >= 0 and sum to 1" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def pointwise_work_table(tmp_path: Path):
    """A one-item input and a work table set up for it (pointwise): (input file, table, items)."""
    f = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "prompt": "p", "responses": ["x"]}])
    cfg = base_cfg(tmp_path, f, kinds=["pointwise"])
    (tmp_path / "out").mkdir()
    w = WorkTable(tmp_path / "out" / "work.sqlite")
    items, _ = load_config_items(cfg)
    w.setup(cfg, items, labels_fingerprint(cfg))
    return f, w, items


def test_changed_judge_on_existing_output_is_refused(tmp_path):
    f, w, items = pointwise_work_table(tmp_path)
    cfg2 = base_cfg(tmp_path, f, kinds=["pointwise"], judge={"mode": "direct"})
    with pytest.raises(JudgerlError, match="different gold judge"):
        w.setup(cfg2, items, labels_fingerprint(cfg2))


def test_one_template_for_two_formats_is_refused(tmp_path):
    f = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "prompt": "p", "responses": ["x", "y"]}])
    t = tmp_path / "t.txt"
    t.write_text(SHORT_POINTWISE)
    with pytest.raises(Exception, match="give templates: {pointwise: FILE, pairwise: FILE}"):
        base_cfg(tmp_path, f, judge={"template": str(t)})
    from judgerl.annotate.config import stage_spec

    cfg = base_cfg(tmp_path, f, templates=short_templates(tmp_path))
    assert stage_spec(cfg, "pairwise", None).template.endswith("pair.txt")
    assert stage_spec(cfg, "pointwise", "low").template.endswith("point.txt")


def test_adding_effort_variants_to_a_run_is_allowed(tmp_path):
    f, w, items = pointwise_work_table(tmp_path)
    cfg2 = base_cfg(tmp_path, f, kinds=["pointwise"], efforts=["low"])
    w.setup(cfg2, items, labels_fingerprint(cfg2))
    stages = dict(w.conn.execute("SELECT stage, COUNT(*) FROM units GROUP BY stage"))
    assert stages == {"pointwise": 1, "pointwise@low": 1}
