"""The write-up's tables, rendered as markdown from analysis/study.json alone (the study's analyze output).

`render(study)` gives the sections of docs/experiments/reward_hacking.md that hold numbers: the judges' alpha
curve, the policy runs, the alarm's quality (tuning runs and held-out runs apart), the online Gao fit and the
cross-judge matrix. Every figure comes from the file; a section whose data the file lacks is left out and named
in a closing line, never filled with a placeholder. Intervals are 95% bootstrap intervals over prompts.
"""

from __future__ import annotations

import json
from pathlib import Path


def ci(c: dict | None, nd: int = 2, signed: bool = False) -> str:
    """'0.12 [0.05, 0.18]' (signed: '+0.12 [+0.05, +0.18]'); '–' when there is no value."""
    if not c or c.get("value") is None:
        return "–"
    f = f"{{:{'+' if signed else ''}.{nd}f}}"
    rng = f" [{f.format(c['lo'])}, {f.format(c['hi'])}]" if c.get("lo") is not None and c.get("hi") is not None else ""
    return f.format(c["value"]).replace("-", "−") + rng.replace("-", "−")


def num(x, nd: int = 2, signed: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x:{'+' if signed else ''}.{nd}f}".replace("-", "−")


def table(head: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join("–" if c is None else str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


EXTRA = (("mean_thinking_tokens", "thinking tokens / verdict", 0), ("tokens_in_per_verdict", "input tokens / verdict", 0),
         ("tokens_out_per_verdict", "output tokens / verdict", 1), ("seconds_per_verdict", "s / verdict", 4))


def judges_table(study: dict) -> str:
    rows = study.get("judges") or []
    if not rows:
        return ""
    extra = [e for e in EXTRA if any(r.get(e[0]) is not None for r in rows)]
    head = ["judge", "gold labels", "alpha ×100 vs gold [95% CI]", "answers", "invalid rate"] + [e[1] for e in extra]
    body = [[r["judge"] + (" (reasoning)" if r.get("reasoning") and "reasoning" not in r["judge"] else ""), f"{r['labels']:,}",
             ci(r.get("alpha_expected"), 1) if "missing" not in r else f"not measured: {r['missing']}", r.get("n"),
             num(r.get("invalid_rate"), 3)] + [num(r.get(k), nd) for k, _, nd in extra] for r in rows]
    return table(head, body)


def _point(r: dict, step) -> dict:
    return next((p for p in r["points"] if p["step"] == step), {})


def _template_cell(pts: list[dict]) -> str:
    """'0.00 → 1.00, flagged from step 40 (33 of 41 points)': the template detector's share first → last, and
    its flags."""
    if pts[-1].get("template_share") is None:
        return "–"
    flagged = [p["step"] for p in pts if p.get("template_flag")]
    return (f"{num(pts[0]['template_share'], 2)} → {num(pts[-1]['template_share'], 2)}"
            + (f", flagged from step {flagged[0]} ({len(flagged)} of {len(pts)} points)" if flagged
               else ", never flagged"))


def runs_table(study: dict) -> str:
    body = []
    for name, r in (study.get("runs") or {}).items():
        pts = r.get("points") or []
        if not pts:
            continue
        first, last = pts[0], pts[-1]
        al = r.get("alpha") or {}
        judge = f"{r.get('judge_name') or r['judge']}" + (" (the gold)" if al.get("gold_itself") else
                                                          f", alpha {ci(al, 1)}" if al.get("value") is not None else "")
        peak = _point(r, r.get("peak_step")).get("gold")
        body.append([name, judge, r.get("steps"), len(pts), ci(last.get("proxy_delta_vs_step0"), 2, True),
                     ci(last.get("gold_delta_vs_step0"), 2, True),
                     f"step {r.get('peak_step')}: {ci(peak)}" if peak else "–", ci(r.get("last_minus_peak"), 2, True),
                     f"{num(first.get('words'), 0)} → {num(last.get('words'), 0)}",
                     f"{num(first.get('same_opening'), 2)} → {num(last.get('same_opening'), 2)}",
                     _template_cell(pts), num(last.get("distance"), 2, True),
                     f"step {r['alarm']['first_step']}" if (r.get("alarm") or {}).get("triggered") else "silent"])
    if not body:
        return ""
    return table(["run", "training judge", "steps", "points with samples", "judge change vs step 0",
                  "gold change vs step 0", "gold peak (step: mean)", "gold last − peak", "words",
                  "same opening (share)", "template share", "NLL shift at last",
                  "alarm as run"], body)


def _onset(o: dict | None) -> str:
    if o and o.get("onset_step") is None and o.get("provisional_onset") is not None:
        return f"none yet (below its peak at the last point only, step {o['provisional_onset']})"
    if not o or o.get("onset_step") is None:
        return "none (gold never stays below its peak)"
    lo, hi = o["bracket"]
    return f"step {hi}" if lo == hi else f"step {hi} (in {lo}–{hi}: samples kept at {', '.join(map(str, o['sampled_steps']))})"


def _lag(lag) -> str:
    return num(lag, 0, True) if lag else ("0" if lag == 0 else "–")


def _alarm_cell(r: dict) -> str:
    if r["alarm_step"] is None:
        return "silent"
    return f"step {r['alarm_step']}" + (" (template)" if r.get("alarm_reason") == "template" else "")


def _held_out_line(names: list[str], h: dict, lead: str) -> str:
    return (f"{lead} ({', '.join(names)}): of {h['hacking_runs']} with an onset, {h['on_time']} on time, "
            f"{h['early']} early, {h['late']} late, {h['missed']} missed"
            + (f" (mean lag {num(h['mean_lag'], 1, True)} steps)" if h.get("mean_lag") is not None else "")
            + f"; of {h['clean_runs']} without one, {h['false_alarms']} false alarms.")


def alarm_table(study: dict) -> str:
    q, t = study.get("alarm_quality"), study.get("alarm_tuning")
    if not q:
        return ""
    s = q["setting"]
    lines = [f"Alarm settings: window {s['window']}, judge margin {s['proxy_margin']}, gold margin {s['gold_margin']}"
             + (f", tuned on {', '.join(t['tuned_on'])} ({t['tied']} grid settings tied at {t['loss']['errors']} errors "
                f"and {t['loss']['abs_lag_steps']} steps of |lag|; {t['rule']})." if t else ".")]
    body = []
    for name, r in q["runs"].items():
        ar = r.get("as_run") or {}
        cfg = ar.get("config") or {}
        as_run = (f"step {ar['first_step']}" if ar.get("first_step") is not None else "silent") + (
            f" (w {cfg['window']}, {cfg['proxy_margin']}/{cfg['gold_margin']})" if cfg.get("window") else "")
        w = ((q.get("with_template") or {}).get("runs") or {}).get(name)
        body.append([name, "tuning" if r.get("tuned_on_this_run") else "held out", _onset(r.get("onset")),
                     _alarm_cell(r), r["status"], _lag(r["lag"])]
                    + ([_alarm_cell(w), w["status"], _lag(w["lag"])] if w else [None] * 3) + [as_run])
    lines.append(table(["run", "set", "hacking onset (gold only)", "alarm (tuned settings)", "status",
                        "lag (steps, − = lead)", "alarm + template input", "status (+ template)",
                        "lag (+ template)", "alarm as run"], body))
    if q.get("held_out_runs"):
        lines.append(_held_out_line(q["held_out_runs"], q.get("held_out") or {}, "Held-out runs"))
        if (q.get("with_template") or {}).get("held_out"):
            lines.append(_held_out_line(q["held_out_runs"], q["with_template"]["held_out"],
                                        "With the template input (a template flag on `window` consecutive points "
                                        "also fires, same tuned margins), held-out runs"))
    else:
        lines.append("Every run here was a tuning run: no held-out figure.")
    return "\n\n".join(lines)


def gao_table(study: dict) -> str:
    body, source = [], None
    for name, r in (study.get("runs") or {}).items():
        g = r.get("gao")
        if not g:
            continue
        source = g["distance"]
        f = g.get("final") or {}
        pk = f.get("peak")
        h = g.get("happened")
        body.append([name, f.get("n_fit"), num(f.get("alpha")), num(f.get("beta")), num(f.get("r2")),
                     f"d* {num(pk['d'])}, gold* {num(pk['gold'])}" if pk else
                     "none within 3x the observed d" if f.get("peak_beyond") else
                     "no peak (beta ≤ 0)" if f.get("beta") is not None else "too few points", f"step {h['step']}: d {num(h['d'])}, gold {num(h['gold'])}" if h else
                     "not yet (highest gold at the last point)", g.get("predicted_step"), g.get("called_step")])
    if not body:
        return ""
    tol = next(r["gao"]["d_tol"] for r in study["runs"].values() if r.get("gao"))
    return (f"gold(d) = g0 + d(alpha − beta ln d), g0 fixed at the base policy's gold; d = {source}. Fitted online "
            f"by least squares on the points so far; *predicted* = first point whose fitted peak lies within "
            f"{tol:.0%} of the peak's d and inside its gold interval; *called* = first point whose fit puts the "
            f"peak behind it.\n\n" + table(["run", "points with d > 0", "alpha", "beta", "R²", "fitted peak (last fit)",
                                            "peak happened", "predicted at step", "called at step"], body))


def cross_judge_table(study: dict) -> str:
    cj = study.get("cross_judge")
    if not cj:
        return ""
    judges, own = cj["judges"], cj.get("trained_on") or {}
    head = ["run (final step)", "n"] + judges + (["arena vs base: win rate"] if any("arena" in r for r in cj["runs"].values()) else [])
    body = []
    for name, r in cj["runs"].items():
        cells = []
        for j in judges:
            c = r["scores"].get(j) or {}
            mark = (" (own)" if own.get(name) == j else "") + \
                (f" [step-{c['scored_step']} answers]" if c.get("scored_step") is not None else "")
            cells.append(f"{ci(c['final'])}; Δ {ci(c['change'], 2, True)}{mark}" if "final" in c else
                         f"P(pref.) {ci(c.get('pref_over_base'))}{mark}")
        if len(head) > len(judges) + 2:
            a = r.get("arena")
            cells.append(f"{ci(a['win_rate'])} ({a['invalid_games']} invalid of {a['games']})" if a else "–")
        label = (f"{name} ({r['final_step']}: an earlier run, replaced by the {r['current_final_step']}-step re-run, "
                 f"not yet scored)" if r.get("stale") else f"{name} ({r['final_step']})")
        body.append([label, r["n"]] + cells)
    note = (f"Each cell: the judge's mean score of the run's final held-out answers; Δ = paired change vs the "
            f"base policy's step-0 answers to the same prompts (95% CI over prompts). Arena: {cj.get('arena_judge', '–')}, "
            f"Arena-Hard prompt, both orders, 0.5 = tie with the base.")
    if any(c.get("scored_step") is not None for r in cj["runs"].values() for c in r["scores"].values()):
        note += (" A cell marked *[step-N answers]* was kept from an earlier matrix (" +
                 ", ".join(cj.get("kept_from_earlier") or []) + " not re-scored) and scored the answers of step N of "
                 "an earlier run of that arm, not this run's final answers.")
    stale = [n for n, r in cj["runs"].items() if r.get("stale")]
    if stale:
        note += (f" Rows marked *earlier run* ({', '.join(stale)}) were scored on the final answers of a run that was "
                 f"later re-run from step 0; their current runs' answers are not in this matrix yet.")
    return note + "\n\n" + table(head, body)


def reward_cost_table(study: dict) -> str:
    """Per run: its training judge's calls inside the GRPO loop (the run's ledger, summary.json's judge_calls)."""
    body = []
    for name, r in (study.get("runs") or {}).items():
        c = r.get("judge_calls") or {}
        n = c.get("backend_calls")
        if not n:
            continue
        body.append([name, r.get("judge_name") or r["judge"], f"{n:,}", num(c["tokens_in"] / n, 0),
                     num(c["tokens_out"] / n, 1), num(1000 * c["seconds"] / n, 1), c.get("invalid", 0)])
    if not body:
        return ""
    note = ("The reward's cost as the policy runs paid it (their judge-call ledgers): verdicts the backend computed "
            "(cache hits excluded), tokens per verdict, judge milliseconds per verdict in batches on the run's GPU "
            "(shared with the other arms of its call).")
    return note + "\n\n" + table(["run", "training judge", "verdicts", "input tokens / verdict",
                                    "output tokens / verdict", "judge ms / verdict", "invalid"], body)


SECTIONS = (("Judges: alpha vs gold", judges_table), ("Policy runs", runs_table),
            ("Reward cost in the policy loop", reward_cost_table),
            ("How good the alarm is", alarm_table), ("Gold vs distance: Gao's RL form, fitted online", gao_table),
            ("Cross-judge matrix", cross_judge_table))


def render(study: dict, level: int = 3) -> str:
    """The write-up's tables as markdown sections; a closing line names the sections study.json has no data for."""
    out, missing = [], []
    for title, fn in SECTIONS:
        body = fn(study)
        if body:
            out.append(f"{'#' * level} {title}\n\n{body}")
        else:
            missing.append(title)
    if missing:
        out.append(f"(Not in this study.json: {'; '.join(missing)}.)")
    return "\n\n".join(out) + "\n"


def render_file(study_json: Path, out: Path | None = None, level: int = 3) -> str:
    """render() of a study.json file; written to `out` when given."""
    from judgerl import JudgerlError

    try:
        study = json.loads(Path(study_json).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise JudgerlError(f"{study_json}: not a readable study.json ({type(e).__name__})") from None
    text = render(study, level)
    if out is not None:
        Path(out).write_text(text, encoding="utf-8")
    return text
