"""`judgerl validate` and `--dry-run`: every shipped config validates, plans are right, bad configs fail
with one line and exit 2, endpoints are pinged for real over loopback."""

from __future__ import annotations

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from judgerl import JudgerlError
from judgerl.cli import app
from judgerl.plans import plan
from judgerl.validate import load_any

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (REPO / "configs").rglob("*.yaml"))


def test_every_shipped_config_validates():
    assert len(CONFIGS) >= 20
    kinds = {}
    for p in CONFIGS:
        kind, _ = load_any(p)
        kinds[p.relative_to(REPO / "configs").as_posix()] = kind
    assert kinds["quickstart.yaml"] == "quickstart"
    assert kinds["accelerate/deepspeed_zero3.yaml"] == kinds["accelerate/fsdp.yaml"] == "accelerate"
    assert kinds["paper/gold_gpt_oss_120b.yaml"] == "annotate"
    assert kinds["paper/served_gold_gpt_oss_120b.yaml"] == "judge"
    assert {kinds[f"paper/judge_qwen3_{s}_non_reasoning.yaml"] for s in ("1p7b", "4b", "8b", "14b")} == {"train-judge"}
    assert {kinds[f"paper/policy_pointwise{s}.yaml"] for s in ("", "_qwen2p5_7b", "_qwen3_4b_instruct")} == {"policy"}


def test_paper_policy_plan_counts_judge_calls():
    r = CliRunner().invoke(app, ["train-policy", "--config", str(REPO / "configs/paper/policy_pointwise.yaml"), "--dry-run"])
    assert r.exit_code == 0, r.output
    # one process: 8 per device x 4 accumulation = 32 completions per step, 1200 steps;
    # monitor at steps 0, 50, ..., 1200 (25 passes) x 256 prompts x (training judge + gold)
    assert "reward: 38400" in r.output and "monitor: 12800" in r.output and "expected judge calls: 51200" in r.output
    assert "meta-llama/Llama-3.1-8B-Instruct" in r.output and "http://gold-0:8000/v1" in r.output
    assert "effort high" in r.output


def test_pairwise_plan_and_validate_dry_run():
    kind, cfg = load_any(REPO / "configs/paper/policy_pairwise.yaml")
    p = plan(kind, cfg)
    # 32 completions per step = 4 groups of 8, 28 round-robin pairs each, 600 steps
    assert p["judge_calls"]["reward"] == 4 * 28 * 600
    r = CliRunner().invoke(app, ["validate", str(REPO / "configs/paper/judge_qwen3_4b_reasoning.yaml"), "--dry-run"])
    assert r.exit_code == 0 and "valid train-judge config" in r.output and "1. sft" in r.output and "2. grpo" in r.output


def test_train_judge_plan_counts_selection_calls():
    kind, cfg = load_any(REPO / "configs/paper/judge_qwen3_4b_reasoning.yaml")
    assert plan(kind, cfg)["judge_calls"] == {"reward (verifiable, no judge)": 0}  # selection off (ZeRO-3)
    cfg = cfg.model_copy(update={"validation_limit": 100, "grpo": cfg.grpo.model_copy(update={"select_every": 300}),
                                 "sft": cfg.sft.model_copy(update={"select_metric": "alpha"})})
    calls = plan(kind, cfg)["judge_calls"]
    assert calls["sft validation (alpha, each epoch)"] == 3 * 100          # 3 epochs
    assert calls["grpo validation (step 0, every 300, last)"] == 4 * 100   # steps 0, 300, 600, 800
    pair = cfg.model_copy(update={"format": "pairwise", "validation_limit": None})
    assert plan(kind, pair)["judge_calls"]["grpo validation (step 0, every 300, last)"] == \
        "4 x validation rows x 2 orders"


def test_quickstart_dry_run_prints_the_plan(tmp_path):
    r = CliRunner().invoke(app, ["quickstart", "--scale", "ci", "--run-dir", str(tmp_path / "qs"), "--dry-run"])
    assert r.exit_code == 0, r.output
    for stage in ("labels", "judges", "policy-weak", "policy-reasoning", "policy-gold", "probes", "report"):
        assert f"{stage}:" in r.output
    assert "labels: 2" in r.output and "endpoints: none" in r.output  # gold re-check of 2 shipped/sampled labels
    assert not (tmp_path / "qs").exists()  # nothing ran


@pytest.mark.parametrize("text, message", [
    ("kind: quickstart\nscale: huge\n", "scale: Input should be 'full' or 'ci'"),
    ("kind: nonsense\n", "unknown kind 'nonsense'"),
    ("hello: 1\n", "cannot tell what kind of config"),
    ("distributed_type: DEEPSPEED\nnum_processes: 8\n", "needs a `deepspeed_config:` mapping"),
    ("policy: smollm2-135m-instruct\njudge: {backend: hf, format: pairwise}\ngold: {backend: hf}\n"
     "grpo: {num_generations: 4, per_device_train_batch_size: 3, steps_per_generation: 2, num_processes: 2}\n", "split across processes"),
    ("backend: openai\nbase_urls: [ftp://x]\n", "must start with http"),
])
def test_bad_configs_are_one_line_errors(tmp_path, text, message):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(JudgerlError, match=message.replace("(", r"\(").replace("`", ".")):
        load_any(p)


def test_cli_bad_config_exits_2_with_one_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("kind: policy\npolicy: x\njudge: smollm2-135m-instruct\ngrpo: {max_steps: zero}\n")
    r = subprocess.run([sys.executable, "-m", "judgerl.cli", "validate", str(p)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "grpo.max_steps" in lines[0] and lines[0].startswith("error:")


class _Models(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        ok = self.path == "/v1/models"
        self.send_response(200 if ok else 404)
        self.end_headers()
        self.wfile.write(b'{"data": []}')

    def log_message(self, *a):
        pass


def test_check_endpoints_over_loopback(tmp_path):
    srv = HTTPServer(("127.0.0.1", 0), _Models)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    dead = HTTPServer(("127.0.0.1", 0), _Models)
    dead_port = dead.server_address[1]
    dead.server_close()  # a port nobody listens on
    try:
        good = tmp_path / "judge.yaml"
        good.write_text(f"kind: judge\nbackend: openai\nmodel: m\nbase_urls: [http://127.0.0.1:{srv.server_address[1]}/v1]\n")
        r = CliRunner().invoke(app, ["validate", str(good), "--check-endpoints"])
        assert r.exit_code == 0 and "-> HTTP 200" in r.output, r.output
        bad = tmp_path / "bad.yaml"
        bad.write_text(good.read_text().replace("]", f", http://127.0.0.1:{dead_port}/v1]"))
        r = CliRunner().invoke(app, ["validate", str(bad), "--check-endpoints"])
        assert isinstance(r.exception, JudgerlError) and "unreachable endpoint(s)" in str(r.exception)
    finally:
        srv.shutdown()
