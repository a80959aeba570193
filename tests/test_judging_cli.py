"""`judgerl judge` from the command line: bad input gives one line and exit 2; the happy path on SmolLM2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "judgerl.cli", "judge", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip().startswith("error:")]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def write(path, text):
    path.write_text(text)
    return str(path)


@pytest.fixture
def good(tmp_path):
    return write(tmp_path / "ok.jsonl", '{"prompt": "Capital of France?", "response": "Paris."}\n')


def test_unknown_model_name(tmp_path, good):
    r = run("--judge", "no-such-model", "--input", good, "--output", str(tmp_path / "o.jsonl"),
            "--run-dir", str(tmp_path / "rd"))
    one_line_error(r, "unknown model 'no-such-model'")


def test_malformed_jsonl_names_the_line(tmp_path):
    inp = write(tmp_path / "in.jsonl", '{"prompt": "a", "response": "b"}\n\n{"prompt": "a", "response": \n')
    r = run("--input", inp, "--output", str(tmp_path / "o.jsonl"), "--run-dir", str(tmp_path / "rd"))
    one_line_error(r, "in.jsonl:3", "malformed JSON")


@pytest.mark.parametrize("line,needle", [
    ('{"response": "b"}', "missing field 'prompt'"),
    ('{"prompt": "a"}', "missing field 'response'"),
    ('{"prompt": "a", "response": "   "}', "empty response text"),
    ('{"prompt": 3, "response": "b"}', "prompt"),
    ('[1, 2]', "expected a JSON object"),
])
def test_bad_records(tmp_path, line, needle):
    inp = write(tmp_path / "in.jsonl", '{"prompt": "a", "response": "b"}\n' + line + "\n")
    r = run("--input", inp, "--output", str(tmp_path / "o.jsonl"), "--run-dir", str(tmp_path / "rd"))
    one_line_error(r, "in.jsonl:2", needle)


def test_bad_config_values(tmp_path, good):
    cfg = write(tmp_path / "judge.yaml", "format: triple\nsampling: {temperature: -1}\n")
    r = run("--judge", cfg, "--input", good, "--output", str(tmp_path / "o.jsonl"), "--run-dir", str(tmp_path / "rd"))
    one_line_error(r, "format", "sampling.temperature")
    r2 = run("--set", "sampling.temperature=-1", "--set", "mode=sideways", "--prompt", "a", "--response", "b",
             "--run-dir", str(tmp_path / "rd"))
    one_line_error(r2, "sampling.temperature", "mode")
    bad_tpl = write(tmp_path / "t.txt", "=== USER ===\n{{instruction}} {{answer}}\n")
    r3 = run("--set", f"template={bad_tpl}", "--prompt", "a", "--response", "b", "--run-dir", str(tmp_path / "rd"))
    one_line_error(r3, "{{answer}}")


def test_empty_response_on_command_line(tmp_path):
    r = run("--prompt", "a", "--response", "", "--run-dir", str(tmp_path / "rd"))
    one_line_error(r, "empty response text")


@pytest.mark.slow
def test_happy_path_and_zero_calls_on_rerun(tmp_path, smollm2_path):
    tpl = write(tmp_path / "tpl.txt", "=== SYSTEM ===\nGrade the fenced response 0-9.\n{{output_instructions}}\n"
                "=== USER ===\n{{instruction}}\n[BEGIN CANDIDATE RESPONSE]\n{{response_1}}\n[END CANDIDATE RESPONSE]\n")
    cfg = write(tmp_path / "judge.yaml", f"name: smol\nbackend: hf\nmodel: {smollm2_path}\nmode: direct\n"
                f"device: cpu\ntemplate: {tpl}\n")
    inp = write(tmp_path / "pairs.jsonl", '{"prompt": "Capital of France?", "response": "Paris.", "id": 1}\n'
                '{"prompt": "2+2?", "response": "5", "id": 2}\n')
    out, rd = tmp_path / "scored.jsonl", tmp_path / "rd"
    r = run("--judge", cfg, "--input", inp, "--output", str(out), "--run-dir", str(rd))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 judged" in r.stdout and "2 backend calls" in r.stdout
    rows = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert [row["id"] for row in rows] == [1, 2]
    for row in rows:
        v = row["verdict"]
        assert 0.0 <= v["expected"] <= 9.0 and abs(sum(v["probs"]) - 1) < 1e-5
    r2 = run("--judge", cfg, "--input", inp, "--output", str(out), "--run-dir", str(rd))
    assert r2.returncode == 0 and "0 backend calls" in r2.stdout, r2.stdout + r2.stderr[-2000:]
    from judgerl.judges.cache import Ledger

    s = Ledger(rd / "ledger.sqlite").summary()
    assert s["backend_calls"] == 2 and s["cache_hits"] == 2
    assert (rd / "judge.yaml").is_file()
