"""`judgerl serve` / `judgerl validate` wiring: serve configs, policy configs served as-is, vLLM rollout endpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from judgerl import JudgerlError

REPO = Path(__file__).resolve().parents[2]


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "judgerl.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_validate_knows_serve_configs(tmp_path):
    r = cli("validate", "configs/serve_embedded.yaml")
    assert r.returncode == 0 and "valid serve config" in r.stdout
    data = yaml.safe_load((REPO / "configs/serve_embedded.yaml").read_text())
    del data["kind"]  # detected from its fields
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**data, "port": 70000}))
    bad = cli("validate", str(tmp_path / "s.yaml"))
    assert bad.returncode == 2 and "port" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_policy_config_served_with_its_reward_settings():
    from judgerl.serve.config import load_serve_config

    cfg = load_serve_config(REPO / "configs/policy_embedded.yaml", overrides=["port=9001"])
    policy = yaml.safe_load((REPO / "configs/policy_embedded.yaml").read_text())
    assert cfg.group_size == policy["grpo"]["num_generations"] and cfg.port == 9001
    assert cfg.reward.on_failure == policy["reward"]["on_failure"]
    assert cfg.judge.name == policy["judge"]["name"] and cfg.run_dir == f"{policy['run_dir']}/serve"
    with pytest.raises(JudgerlError, match="give --config"):
        load_serve_config()


def test_check_endpoints_asks_the_vllm_rollout_server(tmp_path):
    from judgerl.llama_server import free_port

    port = free_port()  # nothing listens there
    data = yaml.safe_load((REPO / "configs/policy_embedded.yaml").read_text())
    data["grpo"].update(use_vllm=True, vllm_mode="server", vllm_server_host="127.0.0.1", vllm_server_port=port)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
    r = cli("validate", str(tmp_path / "p.yaml"), "--check-endpoints")
    assert r.returncode == 2 and f"http://127.0.0.1:{port}" in r.stderr and "unreachable" in r.stderr


def test_non_loopback_bind_without_a_key_is_refused_before_loading():
    env = {k: v for k, v in os.environ.items() if k != "JUDGERL_API_KEY"}
    r = subprocess.run([sys.executable, "-m", "judgerl.cli", "serve", "--judge", "smollm2-135m-instruct", "--host",
                        "0.0.0.0"], capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "JUDGERL_API_KEY" in r.stderr
    assert "--allow-unauthenticated" in r.stderr


@pytest.mark.slow
def test_judgerl_serve_cli_end_to_end(tmp_path):
    """`judgerl serve --judge ...` behind an API key (JUDGERL_API_KEY) on 127.0.0.1: /health answers without
    the key (also as a stand-in rollout server for validate --check-endpoints), rewards need it, Ctrl-C
    stops it with exit 0, and the key is in no file of the run dir nor in the server's output."""
    from judgerl.llama_server import free_port

    port = free_port()
    key = "jrl-" + os.urandom(12).hex()
    proc = subprocess.Popen([sys.executable, "-m", "judgerl.cli", "serve", "--judge", "smollm2-135m-instruct",
                             "--port", str(port), "--set", f"run_dir={tmp_path / 'run'}", "--set", "judge.device=cpu",
                             "--set", "log_level=debug"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "JUDGERL_API_KEY": key})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 600
        while True:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline
            time.sleep(0.5)
        item = {"items": [{"prompt": "Capital of France?", "response": "Paris."}]}
        assert httpx.post(url + "/v1/rewards", json=item, timeout=60).status_code == 401
        assert httpx.post(url + "/v1/rewards", json=item, timeout=60, headers={"Authorization": "Bearer x"}).status_code == 401
        r = httpx.post(url + "/v1/rewards", json=item, timeout=600, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and 0.0 <= r.json()["rewards"][0] <= 9.0
        data = yaml.safe_load((REPO / "configs/policy_embedded.yaml").read_text())
        data["grpo"].update(use_vllm=True, vllm_mode="server", vllm_server_host="127.0.0.1", vllm_server_port=port)
        (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
        v = cli("validate", str(tmp_path / "p.yaml"), "--check-endpoints")
        assert v.returncode == 0 and f"rollout: http://127.0.0.1:{port} -> HTTP 200" in v.stdout
        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 0
    finally:
        proc.kill()
    out = proc.stdout.read()
    assert "judgerl reward server stopped" in out and "API key: required" in out and key not in out
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert files and not [p for p in files if key.encode() in p.read_bytes()]
