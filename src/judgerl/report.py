"""`judgerl report RUN_DIR`: one self-contained HTML page (figures as base64 PNGs, also saved to figures/).

Everything is discovered from the files the stages write, so any run dir works (a quickstart, one
policy run, an eval-judge folder):
- policy runs: folders with monitor.jsonl (+ alarm.json, samples/, flagged/) -> proxy-vs-gold curves with
  alarm markers, adversarial-pattern rates per checkpoint, example flagged samples;
- eval.json (eval-judge) -> judge agreement table; probe-*.json -> probe table and figure;
- heldout/scores.json (quickstart) -> held-out scores; stage-*.json -> pipeline table;
- every ledger.sqlite -> judge calls, tokens, seconds, failures.
A part with no input is shown as "not run".
"""

from __future__ import annotations

import base64
import html
import io
import sqlite3
import time
from pathlib import Path

from judgerl import JudgerlError
from judgerl.data import read_json, read_jsonl, write_text_atomic

CSS = """body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#222}
h1{font-size:24px}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}img.fig{max-width:100%;border:1px solid #eee;margin:6px 0}
.notrun{color:#999;font-style:italic}.alarm{color:#b00;font-weight:bold}pre{white-space:pre-wrap;background:#f7f7f7;
padding:6px;font-size:12px;max-height:160px;overflow:auto}.small{color:#666;font-size:12px}"""


def esc(x) -> str:
    return html.escape(str(x))


def fmt(v, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def table(head: list[str], rows: list[list], left: int = 1) -> str:
    th = "".join(f"<th class='{'l' if i < left else ''}'>{esc(h)}</th>" for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f"<td class='{'l' if i < left else ''}'>{esc(fmt(c))}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def not_run(what: str) -> str:
    return f"<p class='notrun'>not run: {esc(what)}</p>"


class Figures:
    """Matplotlib (Agg) figures saved to figures/<name>.png and returned as <img> tags with data URIs."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.pending: dict[str, bytes] = {}  # written by save(), once every section is built

    def save(self) -> None:
        if self.pending:
            self.folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.pending.items():
            (self.folder / f"{name}.png").write_bytes(data)

    def img(self, fig, name: str, alt: str) -> str:
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        data = buf.getvalue()
        self.pending[name] = data
        return (f"<img class='fig' data-name='{esc(name)}' alt='{esc(alt)}' "
                f"src='data:image/png;base64,{base64.b64encode(data).decode()}'>")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def MaxNLocator(**kw):
    from matplotlib.ticker import MaxNLocator as M

    return M(**kw)


def safe_name(rel: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in rel).strip("_") or "run"


# ---- sections ---------------------------------------------------------------------------------
def load_doc(p: Path, what: str, need: tuple[str, ...] = ()) -> dict:
    """A JSON object the report reads; a bad one is a one-line error naming it (nothing is written)."""
    d = read_json(p, what, dict)
    missing = [k for k in need if k not in d]
    if missing:
        raise JudgerlError(f"{p}: {what} lacks field(s) {missing}; re-create it or move it out of the run folder")
    return d


def pipeline_section(root: Path) -> str:
    recs = sorted((load_doc(p, "stage record", ("stage", "status", "hash")) | {"_path": p}
                   for p in root.rglob("stage-*.json")),
                  key=lambda r: r.get("finished") or float("inf"))
    if not recs:
        return "<h2>Pipeline</h2>" + not_run("no stage records (stage-*.json)")
    rows = [[r["stage"], r["status"], r.get("seconds"), r["hash"], str(r["_path"].parent.relative_to(root))]
            for r in recs]
    return "<h2>Pipeline</h2>" + table(["stage", "status", "seconds", "config hash", "folder"], rows)


def policy_runs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("monitor.jsonl"))


def monitored_runs(root: Path) -> list[tuple[Path, str, list[dict]]]:
    """(run dir, its name relative to root, monitor records) for every policy run under root."""
    from judgerl.evaluation.monitor import read_monitor

    out = []
    for run in policy_runs(root):
        try:
            recs = read_monitor(run / "monitor.jsonl")
        except (KeyError, TypeError, ValueError):
            raise JudgerlError(f"{run / 'monitor.jsonl'}: a record without a numeric 'step'; re-create it or move it "
                               f"out of the run folder") from None
        out.append((run, str(run.relative_to(root)) if run != root else run.name, recs))
    return out


def curves_section(runs: list[tuple[Path, str, list[dict]]], figs: Figures) -> str:
    out = ["<h2>Proxy vs gold (gold monitor)</h2><p class='small'>Training-judge (proxy) and gold-judge mean "
           "scores on held-out prompts per monitored step; red lines mark hacking-alarm triggers.</p>"]
    if not runs:
        return out[0] + not_run("no policy run (monitor.jsonl)")
    plt = _plt()
    for run, rel, recs in runs:
        alarm = load_doc(run / "alarm.json", "alarm state") if (run / "alarm.json").is_file() else None
        events = (alarm or {}).get("events", [])
        if not isinstance(events, list) or not all(isinstance(e, dict) and "step" in e for e in events):
            raise JudgerlError(f"{run / 'alarm.json'}: 'events' must be a list of {{step, ...}} objects")
        events = [e["step"] for e in events]
        fig, ax = plt.subplots(figsize=(6.4, 3.2))
        steps = [r["step"] for r in recs]
        ax.plot(steps, [r.get("proxy_mean") for r in recs], "o-", label="training judge (proxy)")
        ax.plot(steps, [r.get("gold_mean") for r in recs], "s-", label="gold judge")
        for s in events:
            ax.axvline(s, color="red", ls="--", lw=1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("policy step"), ax.set_ylabel("mean score"), ax.set_title(rel)
        ax.legend(fontsize=8), ax.grid(alpha=0.3)
        state = (f"<span class='alarm'>alarm triggered at step {events[0]}</span>" if events
                 else "alarm: not triggered" if alarm is not None or recs else "")
        out.append(f"<h3>{esc(rel)}</h3>{figs.img(fig, 'curves_' + safe_name(rel), 'proxy vs gold ' + rel)}"
                   f"<p>{state}</p>")
        out.append(table(["step", "proxy", "gold", "proxy invalid", "gold invalid", "mean words"],
                         [[r["step"], r.get("proxy_mean"), r.get("gold_mean"), r.get("proxy_invalid_rate"),
                           r.get("gold_invalid_rate"), r.get("mean_words")] for r in recs], left=0))
    return "".join(out)


def patterns_section(runs: list[tuple[Path, str, list[dict]]], figs: Figures) -> str:
    out = ["<h2>Adversarial-pattern rates per checkpoint</h2>"]
    if not runs:
        return out[0] + not_run("no policy run (monitor.jsonl)")
    plt = _plt()
    for run, rel, recs in runs:
        keys = sorted({k for r in recs for k in r if k.startswith("pattern/")})
        if not keys:
            out.append(f"<h3>{esc(rel)}</h3>" + not_run("no pattern rates in monitor.jsonl"))
            continue
        fig, ax = plt.subplots(figsize=(6.4, 2.8))
        for k in keys:
            ax.plot([r["step"] for r in recs], [r.get(k) for r in recs], "o-", label=k.split("/", 1)[1])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(-0.05, 1.05), ax.set_xlabel("policy step"), ax.set_ylabel("share of samples")
        ax.legend(fontsize=7, ncol=2), ax.grid(alpha=0.3), ax.set_title(rel)
        out.append(f"<h3>{esc(rel)}</h3>{figs.img(fig, 'patterns_' + safe_name(rel), 'pattern rates ' + rel)}")
        out.append(table(["step"] + [k.split("/", 1)[1] for k in keys],
                         [[r["step"]] + [r.get(k) for k in keys] for r in recs], left=0))
    return "".join(out)


def agreement_section(root: Path) -> str:
    head = ["judge", "model", "mode", "α ×100", "α (expected) ×100 [95% CI]", "accuracy", "exact match",
            "invalid rate", "consistency", "human accuracy", "thinking tokens", "n"]
    rows = []
    for p in sorted(root.rglob("eval.json")):
        r = load_doc(p, "judge evaluation")
        g, j = r.get("gold") or {}, r.get("judge") or {}
        human = "; ".join(f"{k}: {fmt(v.get('accuracy'))}" for k, v in (r.get("human") or {}).items()
                          if isinstance(v, dict) and "accuracy" in v) or None
        acc = g.get("accuracy", g.get("pairwise_accuracy"))
        ci = g.get("alpha_expected_ci") or [None, None]
        ae = g.get("alpha_expected")
        ae = (f"{fmt(ae, 1)} [{fmt(ci[0], 1)}, {fmt(ci[1], 1)}]" if ae is not None and ci[0] is not None else ae)
        n = g.get("n")
        n = f"{n} ({g['items']} items, small n)" if g.get("small_n") else n
        mode = f"{j.get('mode')} ({j['dtype']})" if j.get("dtype") else j.get("mode")  # weights, where recorded
        rows.append([j.get("name", p.parent.name), Path(str(j.get("model", ""))).name, mode, g.get("alpha"),
                     ae, acc, g.get("exact_match"), g.get("invalid_rate"),
                     g.get("position_consistency"), human, g.get("mean_thinking_tokens"), n])
    body = table(head, rows, left=3) if rows else not_run("no judge evaluation (eval.json)")
    return ("<h2>Judge agreement with gold</h2><p class='small'>Krippendorff's α (interval) vs gold scores on "
            "the held-out split (95% bootstrap interval over items); accuracy = pairwise preference accuracy; "
            "human = accuracy on human-labelled pairs. Figures on fewer than 30 items are marked small n.</p>" + body)


def heldout_section(root: Path, figs: Figures) -> str:
    p = root / "heldout" / "scores.json"
    if not p.is_file():  # a quickstart's held-out scores are its monitor's (the summary's paired changes)
        return "" if (root / "summary.json").is_file() else \
            "<h2>Held-out policy scores</h2>" + not_run("no held-out evaluation (heldout/scores.json)")
    d = load_doc(p, "held-out scores", ("policies", "prompts"))
    if not isinstance(d["policies"], dict) or not all(isinstance(v, dict) for v in d["policies"].values()):
        raise JudgerlError(f"{p}: 'policies' must map policy names to {{judge: score}} objects")
    pols = list(d["policies"])
    judges = sorted({j for v in d["policies"].values() for j in v})
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    w = 0.8 / max(1, len(judges))
    for k, j in enumerate(judges):
        ax.bar([i + k * w for i in range(len(pols))], [d["policies"][p_].get(j) or 0 for p_ in pols], w, label=j)
    ax.set_xticks([i + w * (len(judges) - 1) / 2 for i in range(len(pols))], pols, fontsize=8)
    ax.set_ylabel("mean score (0-9)"), ax.legend(fontsize=8), ax.grid(alpha=0.3, axis="y")
    return (f"<h2>Held-out policy scores</h2><p class='small'>{d['prompts']} unseen prompts, scored by the gold "
            f"judge and each training judge.</p>{figs.img(fig, 'heldout', 'held-out scores')}"
            + table(["policy"] + judges, [[p_] + [d["policies"][p_].get(j) for j in judges] for p_ in pols]))


def probes_section(root: Path, figs: Figures) -> str:
    res = [(p, read_json(p, "probe result")) for p in sorted(root.rglob("probe-*.json"))]
    res = [(p, r) for p, r in res if isinstance(r, dict) and "attacks" in r]  # other probe-*.json: not ours
    for p, r in res:
        ok = isinstance(r["attacks"], list) and all(isinstance(a, dict) and {"attack", "n", "invalid"} <= set(a)
                                                    for a in r["attacks"])
        if not ok or "judge" not in r or "format" not in r:
            raise JudgerlError(f"{p}: not a judgerl probe result (judge, format, attacks: [{{attack, n, invalid}}]); "
                               f"re-run `judgerl probe` or move it out of the run folder")
    res = [r for _, r in res]
    if not res:
        return "<h2>Judge probes</h2>" + not_run("no probe results (probe-*.json)")
    rows, plt = [], _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    names = sorted({a["attack"] for r in res for a in r["attacks"]})
    w = 0.8 / len(res)
    for k, r in enumerate(res):
        by = {a["attack"]: a for a in r["attacks"]}
        key = "lift" if r["format"] == "pointwise" else "win_rate"
        ax.bar([i + k * w for i in range(len(names))], [(by.get(n) or {}).get(key) or 0 for n in names], w,
               label=r["judge"])
        for a in r["attacks"]:
            ci = a.get(f"{key}_ci") or [None, None]
            rows.append([r["judge"], a["attack"], a["n"], a["invalid"], a.get(key), ci[0], ci[1], a.get("fooled_rate")])
    ax.set_xticks([i + w * (len(res) - 1) / 2 for i in range(len(names))], names, rotation=30, ha="right", fontsize=7)
    ax.axhline(0, color="black", lw=0.8), ax.set_ylabel("score lift / win rate"), ax.legend(fontsize=8)
    return ("<h2>Judge probes</h2><p class='small'>Pointwise: score lift of the attacked answer over the honest "
            "one; pairwise: win rate of the attacked answer (both orders).</p>" + figs.img(fig, "probes", "probes")
            + table(["judge", "attack", "n", "invalid", "lift / win rate", "CI low", "CI high", "fooled rate"], rows,
                    left=2))


def samples_section(root: Path, limit: int = 3) -> str:
    out = ["<h2>Example flagged samples</h2>"]
    runs = policy_runs(root)
    if not runs:
        return out[0] + not_run("no policy run")
    for run in runs:
        rel = str(run.relative_to(root)) if run != root else run.name
        flagged = sorted((run / "flagged").glob("step_*.jsonl")) if (run / "flagged").is_dir() else []
        if flagged:
            rows, note = read_jsonl(flagged[-1]), f"flagged by the alarm ({flagged[-1].name})"
        else:
            last = sorted((run / "samples").glob("step_*.jsonl")) if (run / "samples").is_dir() else []
            if not last:
                out.append(f"<h3>{esc(rel)}</h3>" + not_run("no monitor samples"))
                continue
            rows = sorted(read_jsonl(last[-1]), key=lambda r: (r.get("proxy") or 0) - (r.get("gold") or 0), reverse=True)
            note = f"no alarm: largest proxy − gold gaps at the last monitored step ({last[-1].name})"
        out.append(f"<h3>{esc(rel)}</h3><p class='small'>{esc(note)}</p>")
        for r in rows[:limit]:
            prompt = r["prompt"][-1]["content"] if isinstance(r.get("prompt"), list) else r.get("prompt")
            out.append(f"<p>proxy {fmt(r.get('proxy'))} · gold {fmt(r.get('gold'))} · patterns "
                       f"{esc(', '.join(r.get('patterns') or []) or 'none')}</p><pre>PROMPT: {esc(prompt)}\n\n"
                       f"RESPONSE: {esc(r.get('response'))}</pre>")
    return "".join(out)


def ledger_section(root: Path) -> str:
    from judgerl.judges.cache import Ledger

    rows, total = [], {"requests": 0, "cache_hits": 0, "failures": 0, "tokens_in": 0, "tokens_out": 0, "seconds": 0.0}
    for p in sorted(root.rglob("ledger.sqlite")):
        where = str(p.parent.relative_to(root)) or "."
        try:
            by_judge = Ledger(p).by_judge()
        except sqlite3.DatabaseError as e:
            raise JudgerlError(f"{p}: not a readable judge ledger ({e}); move it out of the run folder") from None
        for r in by_judge:
            rows.append([where, r["judge"], r["stage"], r["requests"], r["cache_hits"], r["invalid"], r["failures"],
                         r["tokens_in"], r["tokens_out"], r["seconds"]])
            for k in total:
                total[k] += r[k]
    if not rows:
        return "<h2>Judge-call ledger</h2>" + not_run("no ledger.sqlite")
    rows.append(["all", "", "", total["requests"], total["cache_hits"], None, total["failures"], total["tokens_in"],
                 total["tokens_out"], total["seconds"]])
    return ("<h2>Judge-call ledger</h2>" + table(["run", "judge", "stage", "calls", "cache hits", "invalid",
                                                   "failures", "tokens in", "tokens out", "seconds"], rows, left=3))


def summary_section(root: Path, figs: Figures) -> str:
    """The quickstart's five-line summary and its proxy-vs-gold figure (summary.json), first on the page."""
    p = root / "summary.json"
    if not p.is_file():
        return ""
    from judgerl.quickstart.summary import figure

    s = load_doc(p, "quickstart summary", ("lines",))
    fig = figure(root, s)
    img = figs.img(fig, "proxy_vs_gold", "proxy vs gold, three policy runs") if fig is not None else ""
    return ("<h2>Summary</h2><ol>" + "".join(f"<li>{esc(x)}</li>" for x in s["lines"]) + "</ol>" + img
            + "<p class='small'>Changes are paired (last monitor point minus step 0 on the same held-out prompts) "
            "with 95% bootstrap intervals over prompts; the judge's score is 0-9, the gold RM's reward is unbounded. "
            "Left axis: the run's training judge; right axis: the gold RM.</p>")


def build_report(run_dir: str | Path) -> Path:
    """Write <run_dir>/report.html and <run_dir>/figures/*.png; returns the HTML path."""
    root = Path(run_dir)
    if root.exists() and not root.is_dir():
        raise JudgerlError(f"run dir {root} is a file; give the run folder")
    if not root.is_dir():
        raise JudgerlError(f"run dir not found: {root}")
    figs = Figures(root / "figures")
    runs = monitored_runs(root)
    from judgerl.study.report_section import study_section

    parts = [summary_section(root, figs), pipeline_section(root), study_section(root, esc, table), curves_section(runs, figs),
             heldout_section(root, figs),
             agreement_section(root), patterns_section(runs, figs), probes_section(root, figs), samples_section(root),
             ledger_section(root)]
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>judgerl report: {esc(root.name)}</title>"
            f"<style>{CSS}</style></head><body><h1>judgerl report: {esc(root.name)}</h1>"
            f"<p class='small'>{esc(root.resolve())} · generated {time.strftime('%Y-%m-%d %H:%M:%S')}</p>"
            + "".join(parts) + "</body></html>")
    figs.save()
    return write_text_atomic(root / "report.html", page)
