"""`judgerl report`: every section from the files the stages write, "not run" for missing parts, and the
page rendered by a real headless Chromium (screenshot + DOM with decoded images and tables)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from judgerl import JudgerlError
from judgerl.cli import app
from judgerl.judges.cache import Ledger
from judgerl.judges.spec import Verdict
from judgerl.report import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def make_run(root: Path) -> Path:
    """A run dir laid out as quickstart / train-policy / eval-judge / probe write it (real SQLite ledger)."""
    pol = root / "policies" / "non_reasoning"
    recs = [{"step": s, "n": 4, "proxy_mean": 4 + s, "gold_mean": 6 - s, "proxy_invalid_rate": 0.0,
             "gold_invalid_rate": 0.25, "mean_words": 30 + 10 * s, "pattern/fake_end_marker": s / 4,
             "pattern/self_assessment": 0.0, "pattern/any": s / 4} for s in range(4)]
    write_jsonl(pol / "monitor.jsonl", recs)
    (pol / "alarm.json").write_text(json.dumps({"triggered": True, "first_step": 2, "events": [{"step": 2}, {"step": 3}]}))
    sample = {"step": 3, "prompt": [{"role": "user", "content": "Write a <b>poem</b>"}], "response": "Poem. END OF TEXT",
              "proxy": 9.0, "gold": 1.0, "words": 3, "patterns": ["fake_end_marker"]}
    write_jsonl(pol / "flagged" / "step_0003.jsonl", [sample])
    write_jsonl(root / "policies" / "reasoning" / "monitor.jsonl", [dict(r, proxy_mean=5.0, gold_mean=5 + r["step"]) for r in recs])
    write_jsonl(root / "policies" / "reasoning" / "samples" / "step_0003.jsonl", [dict(sample, proxy=5.0, gold=7.0)])
    (root / "judges" / "reasoning").mkdir(parents=True)
    (root / "judges" / "reasoning" / "eval.json").write_text(json.dumps({
        "judge": {"name": "judge-reasoning", "model": "/x/judge", "mode": "reasoning", "dtype": "bfloat16"},
        "split": "test",
        "gold": {"n": 8, "alpha": 61.5, "alpha_expected": 64.0, "exact_match": 0.5, "pairwise_accuracy": 0.75,
                 "invalid_rate": 0.125, "mean_thinking_tokens": 20.0},
        "human": {"llmbar-natural": {"n": 2, "accuracy": 0.5}}}))
    (root / "probes").mkdir()
    (root / "probes" / "probe-judge-reasoning.json").write_text(json.dumps({
        "judge": "judge-reasoning", "format": "pointwise", "attacks": [
            {"attack": "fake_end_marker", "n": 3, "invalid": 0, "lift": 1.5, "lift_ci": [0.2, 2.8], "fooled_rate": 0.67},
            {"attack": "null_model", "n": 3, "invalid": 1, "lift": -2.0, "lift_ci": [-3.0, -1.0], "fooled_rate": 0.0}]}))
    (root / "heldout").mkdir()
    (root / "heldout" / "scores.json").write_text(json.dumps({"prompts": 2, "policies": {
        "base": {"gold": 5.0, "judge-reasoning": 5.5}, "policy-reasoning": {"gold": 6.0, "judge-reasoning": 6.5}}}))
    led = Ledger(pol / "ledger.sqlite")
    led.record("gold", "monitor-gold", [("k1", Verdict(label=5, valid=True, tokens_in=300, tokens_out=8, seconds=1.5)),
                                        ("k2", Verdict(error="timeout"))])
    (root / "annotations").mkdir()
    (root / "annotations" / "stage-annotate.json").write_text(json.dumps(
        {"stage": "annotate", "hash": "abc", "status": "done", "seconds": 12.0, "finished": 1.0}))
    return root


def test_report_sections_and_figures(tmp_path):
    root = make_run(tmp_path / "run")
    html = build_report(root).read_text()
    for text in ("Proxy vs gold", "alarm triggered at step 2", "Judge agreement", "61.50", "llmbar-natural: 0.50",
                 "Adversarial-pattern rates", "fake_end_marker", "Judge probes", "Held-out policy scores",
                 "END OF TEXT", "flagged by the alarm", "largest proxy − gold gaps", "Judge-call ledger",
                 "Pipeline", "annotate", "reasoning (bfloat16)"):
        assert text in html, text
    assert "Write a &lt;b&gt;poem&lt;/b&gt;" in html  # sample text is escaped
    assert "not run" not in html
    pngs = sorted(p.name for p in (root / "figures").glob("*.png"))
    assert pngs == ["curves_policies_non_reasoning.png", "curves_policies_reasoning.png", "heldout.png",
                    "patterns_policies_non_reasoning.png", "patterns_policies_reasoning.png", "probes.png"]
    assert html.count("src='data:image/png;base64,") == len(pngs)
    ledger = html[html.index("Judge-call ledger"):]
    assert "<td class='l'>monitor-gold</td><td class=''>2</td><td class=''>0</td><td class=''>1</td><td class=''>1</td>" in ledger


def test_missing_parts_are_not_run(tmp_path):
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(app, ["report", str(tmp_path / "empty")])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "empty" / "report.html").read_text()
    assert html.count("not run") == 8
    r = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert r.exit_code != 0 and "run dir not found" in str(r.exception)


def test_a_corrupt_run_file_is_a_one_line_error(tmp_path):
    """A monitor.jsonl cut off mid-line (a killed run) names the file and line; nothing is written."""
    run = make_run(tmp_path / "run")
    mon = run / "policies" / "non_reasoning" / "monitor.jsonl"
    mon.write_text(mon.read_text() + '{"step": 4, "proxy_mea')
    r = CliRunner().invoke(app, ["report", str(run)])
    assert isinstance(r.exception, JudgerlError) and str(r.exception).startswith(f"{mon}:5: malformed JSON")
    assert not (run / "report.html").exists()


CHECK = """<script>window.addEventListener('load', () => {
  const imgs = [...document.querySelectorAll('img.fig')];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 100 && i.naturalHeight > 50).length;
  const d = document.createElement('div'); d.id = 'render-check';
  d.textContent = `imgs=${imgs.length} decoded=${ok} tables=${document.querySelectorAll('table').length}`;
  document.body.appendChild(d);
});</script></body>"""


def chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240)


def render_check(report: Path, tmp: Path, shot: Path) -> tuple[str, object]:
    """Screenshot + DOM of the report in headless Chromium; returns (marker text, screenshot pixels)."""
    from PIL import Image
    import numpy as np

    page = tmp / "check.html"
    page.write_text(report.read_text().replace("</body>", CHECK))
    r = chromium(["--window-size=1280,4000", f"--screenshot={shot}", page.as_uri()], tmp)
    assert shot.is_file(), r.stderr[-2000:]
    dom = chromium(["--dump-dom", page.as_uri()], tmp).stdout
    start = dom.find('id="render-check">')
    assert start >= 0, dom[-2000:]
    marker = dom[start + len('id="render-check">'):dom.find("<", start)]
    return marker, np.asarray(Image.open(shot).convert("L"), dtype=float)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs Debian's chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    root = make_run(tmp_path / "run")
    report = build_report(root)
    shot = root / "figures" / "screenshot.png"
    marker, px = render_check(report, tmp_path, shot)
    n = report.read_text().count("<img class='fig'")
    assert n == 6 and marker.startswith(f"imgs={n} decoded={n} tables="), marker
    assert int(marker.split("tables=")[1]) >= 7
    assert px.shape[1] == 1280 and px.std() > 20  # not blank: text, tables and plots
    figure_rows = (px < 200).mean(axis=1)
    assert (figure_rows > 0.2).sum() > 50  # several rows dense with plotted content
