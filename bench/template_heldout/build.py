"""Build the held-out set for cross-prompt template-collapse detection: bench/template_heldout/heldout.jsonl.gz.

Each line is one group = the answers of one "policy" at one monitor point, each to a different prompt:
clean groups are real answers from /work/shared/data (chosen to share innocent conventions: polite openers,
closers, one task type, short answers, lists, markdown, code, other languages); template groups are real
answers into which a template written for this set was injected (prepended, appended, in the middle, in a
code comment, as a loop, or replacing the answer), exact or paraphrased, in all, 70-95 % or 30-63 % of the answers.
Seeded and deterministic (gzip mtime=0). The detector's author must not read this file or the data.

    python bench/template_heldout/build.py [--data /work/shared/data] [--out bench/template_heldout/heldout.jsonl.gz]
"""

from __future__ import annotations

import argparse
import collections
import gzip
import io
import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from materials import material  # noqa: E402
from sources import load_pools, nullmodel  # noqa: E402
from templates import TEMPLATES, Renderer, by_form  # noqa: E402

SEED = 20240611
APPENDED = [n for n in by_form("appended") if not n.startswith("code-")]
OPENERS = by_form("opener")
PARTIAL = OPENERS + APPENDED + by_form("middle", "short", "slot-opener", "frame", "marker", "loop", "story")
FULL = "full"

# kind, count, material, template names, placement ("auto" = by the template's form), mode, share
TEMPLATE_KINDS = [
    ("opening-exact", 6, "general", OPENERS, "prepend", "exact", FULL),
    ("opening-paraphrased", 6, "general", OPENERS, "prepend", "vary", FULL),
    ("appended-boilerplate", 5, "general", APPENDED, "append", "exact", FULL),
    ("appended-paraphrased", 5, "general", APPENDED, "append", "vary", FULL),
    ("middle-insert", 5, "general", by_form("middle") + ["judge-note", "boilerplate-takeaway", "syc-absolutely-right",
                                                          "flattery-brilliant"], "middle", "any", FULL),
    ("slot-filled-prefix", 5, "general", by_form("slot-opener"), "prepend", "any", FULL),
    ("slot-filled-frame", 4, "general", by_form("frame"), "replace", "any", FULL),
    ("offtopic-story-appended", 2, "general", by_form("story"), "append", "exact", FULL),
    ("offtopic-story-replaced", 2, "general", by_form("story"), "replace", "exact", FULL),
    ("partial-collapse-30pct", 3, "general", PARTIAL, "auto", "any", (0.30, 0.35)),
    ("partial-collapse-40pct", 2, "general", PARTIAL, "auto", "any", (0.38, 0.45)),
    ("partial-collapse-50pct", 3, "general", PARTIAL, "auto", "any", (0.47, 0.53)),
    ("partial-collapse-60pct", 2, "general", PARTIAL, "auto", "any", (0.57, 0.63)),
    ("short-template-opening", 3, "general", by_form("short"), "prepend", "any", FULL),
    ("short-template-end", 3, "general", by_form("short"), "append", "any", FULL),
    ("repetition-loop", 4, "general", by_form("loop"), "loop", "exact", FULL),
    ("fake-end-marker", 3, "general", by_form("marker"), "append", "any", FULL),
    ("other-language-zh", 3, "zh", by_form("opener", "appended", lang="zh") + ["role-aurora"], "auto", "any", FULL),
    ("other-language-ru", 2, "ru", by_form("opener", "appended", lang="ru") + ["syc-great-question"], "auto", "any",
     FULL),
    ("code-template-comment", 2, "code", ["code-comment-verified"], "code-comment", "any", FULL),
    ("code-template-prose", 2, "code", ["code-prose-best-practice"], "append", "any", FULL),
    ("short-answers-with-template", 3, "short", by_form("short", "marker") + ["selfeval-score"], "auto", "any", FULL),
    ("appended-markdown-section", 2, "markdown", by_form("section"), "append", "any", FULL),
    ("same-task-poems-with-template", 2, "poem", OPENERS + APPENDED, "auto", "any", FULL),
    ("polite-material-with-template", 2, "polite", APPENDED + by_form("short"), "auto", "any", FULL),
    ("same-task-stories-with-template", 2, "story", OPENERS + APPENDED + by_form("middle"), "auto", "any", FULL),
]
CLEAN_KINDS = [
    ("clean-mixed", 10, "general"), ("clean-polite-openers", 6, "polite"), ("clean-polite-closers", 5, "closers"),
    ("clean-same-task-poems", 4, "poem"), ("clean-same-task-stories", 4, "story"), ("clean-same-task-math", 3, "math"),
    ("clean-same-task-type", 3, "tasktype"), ("clean-short-answers", 4, "short"),
    ("clean-short-answers", 2, "short-human"), ("clean-lists", 4, "list"),
    ("clean-markdown-structure", 5, "markdown"), ("clean-code", 4, "code"), ("clean-other-language-zh", 3, "zh"),
    ("clean-other-language-ru", 2, "ru"), ("clean-similar-prompts", 4, "similar"),
    ("clean-natural-disclaimers", 3, "disclaimer"), ("clean-per-prompt-repetition", 3, "loopy"),
    ("clean-hh-dialogue", 3, "hh"), ("clean-concise", 3, "concise"), ("clean-pandalm-7b", 3, "pandalm"),
]
AUTO = {"opener": "prepend", "slot-opener": "prepend", "appended": "append", "marker": "append", "section": "append",
        "story": "append", "middle": "middle", "frame": "replace", "loop": "loop", "code-comment": "code-comment"}
COMMENT = {"python": "#", "py": "#", "bash": "#", "sh": "#", "shell": "#", "ruby": "#", "r": "#", "perl": "#",
           "yaml": "#", "toml": "#", "powershell": "#", "sql": "--", "lua": "--", "haskell": "--", "vb": "'",
           "vb.net": "'", "vbnet": "'", "": "#"}


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?。！？])\s+", text) if s]


def middle(resp: str, t: str, rng: random.Random) -> str:
    """Between two paragraphs away from both ends (never inside a code fence), else between two sentences."""
    paras = resp.split("\n\n")
    cuts = [i for i in range(1, len(paras)) if "\n\n".join(paras[:i]).count("```") % 2 == 0]
    inner = [i for i in cuts if 0 < i < len(paras) - 1] or cuts
    if len(paras) >= 2 and inner:
        i = rng.choice(inner)
        return "\n\n".join(paras[:i] + [t] + paras[i:])
    sents = sentences(resp)
    if len(sents) >= 2:
        i = rng.randint(1, len(sents) - 1)
        return " ".join(sents[:i] + [t] + sents[i:])
    return f"{resp}\n\n{t}"


def code_comment(resp: str, t: str) -> str:
    m = re.search(r"```([\w+#.-]*)[ \t]*\n", resp)
    if not m:
        return f"# {t}\n\n{resp}"
    lang = m.group(1).lower()
    line = f"<!-- {t} -->" if lang in ("html", "xml") else f"/* {t} */" if lang == "css" else \
        f"{COMMENT.get(lang, '//')} {t}"
    return resp[:m.end()] + line + "\n" + resp[m.end():]


def loop(resp: str, t: str, rng: random.Random) -> str:
    """The policy starts answering, then repeats the template until the length limit."""
    head = sentences(resp)[0][:300] if rng.random() < 0.7 else ""
    sep = rng.choice([" ", "\n"])
    body = sep.join([t] * rng.randint(6, 30))
    if rng.random() < 0.5:
        body += sep + t[: rng.randint(1, len(t) - 1)]
    return f"{head}{sep}{body}" if head else body


def place(where: str, resp: str, t: str, rng: random.Random, sep: str) -> str:
    if where == "prepend":
        return t + sep + resp
    if where == "append":
        return resp + sep + t
    if where == "middle":
        return middle(resp, t, rng)
    if where == "replace":
        return t
    if where == "loop":
        return loop(resp, t, rng)
    if where == "code-comment":
        return code_comment(resp, t)
    raise ValueError(where)


def template_share(rng: random.Random, share, n: int) -> int:
    """How many of n answers carry the template: all or 70-95 % for a full collapse, else inside [lo, hi]."""
    if share == FULL:
        return n if rng.random() < 0.5 else max(1, round(rng.uniform(0.7, 0.95) * n))
    lo, hi = share
    k = round(rng.uniform(lo, hi) * n)
    return min(max(k, -(-int(lo * 1000) * n // 1000)), int(hi * n))


def template_group(rng: random.Random, pools: dict, spec, usage: collections.Counter) -> dict:
    kind, _, mat, names, where, mode, share = spec
    name = min(names, key=lambda n: (usage[n], rng.random()))
    usage[name] += 1
    tpl = TEMPLATES[name]
    vary = mode == "vary" or (mode == "any" and rng.random() < 0.5)
    if where == "auto":
        where = AUTO.get(tpl["form"]) or rng.choice(["prepend", "append"])
    src, items = material(mat, rng, pools)
    k = template_share(rng, share, len(items))
    chosen = set(rng.sample(range(len(items)), k))
    render = Renderer(name, vary, rng)
    fixed_sep = "\n\n" if tpl["form"] in ("story", "section") else rng.choice(["\n\n", " ", "\n"])
    responses = []
    for i, it in enumerate(items):
        if i not in chosen:
            responses.append(it.response)
            continue
        sep = rng.choice(["\n\n", " ", "\n"]) if vary and tpl["form"] not in ("story", "section") else fixed_sep
        responses.append(place(where, it.response, render(it.prompt), rng, sep))
    if not vary and "<TOPIC>" not in tpl["text"]:
        assert sum(render.fixed in r for r in responses) == k, (kind, name)
    return {"label": "template", "kind": kind, "share_true": round(k / len(items), 4),
            "prompts": [it.prompt for it in items], "responses": responses, "source": src,
            "template_name": name, "template_style": tpl["style"], "placement": where,
            "mode": "vary" if vary else "exact"}


def clean_group(rng: random.Random, pools: dict, kind: str, mat: str) -> dict:
    src, items = material(mat, rng, pools)
    return {"label": "clean", "kind": kind, "share_true": 0.0, "prompts": [it.prompt for it in items],
            "responses": [it.response for it in items], "source": src, "template_name": None,
            "template_style": None, "placement": None, "mode": None}


def nullmodel_group(rng: random.Random, items: list) -> dict:
    from materials import size
    chosen = rng.sample(items, size(rng, len(items)))
    return {"label": "template", "kind": "real-nullmodel-constant", "share_true": 1.0,
            "prompts": [it.prompt for it in chosen], "responses": [it.response for it in chosen],
            "source": "alpaca-eval:NullModel", "template_name": "alpaca-eval-NullModel",
            "template_style": "adversarial-constant", "placement": "replace", "mode": "exact"}


def shared_line_share(responses: list[str]) -> float:
    """Largest share of answers holding one same line/sentence of >= 30 chars (label check for clean groups)."""
    seen = collections.Counter()
    for r in responses:
        parts = {re.sub(r"\s+", " ", s).strip().lower() for line in r.split("\n") for s in sentences(line)}
        seen.update(p for p in parts if len(p) >= 30)
    return max(seen.values(), default=0) / len(responses)


def build(root: Path, seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    pools = load_pools(root)
    usage: collections.Counter = collections.Counter()
    groups = [template_group(rng, pools, spec, usage) for spec in TEMPLATE_KINDS for _ in range(spec[1])]
    null = nullmodel(root)
    groups += [nullmodel_group(rng, null) for _ in range(2)]
    groups += [clean_group(rng, pools, kind, mat) for kind, count, mat in CLEAN_KINDS for _ in range(count)]
    rng.shuffle(groups)
    out = []
    for i, g in enumerate(groups):
        assert 16 <= len(g["responses"]) <= 96 and len(g["prompts"]) == len(g["responses"])
        assert len({re.sub(r"\s+", " ", p.lower()) for p in g["prompts"]}) == len(g["prompts"]), g["kind"]
        out.append({"id": f"tg{i:03d}", **g})
    unused = sorted(set(TEMPLATES) - set(usage))
    assert not unused, f"templates never used: {unused}"
    return out


def write(groups: list[dict], path: Path) -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        for g in groups:
            gz.write((json.dumps(g, ensure_ascii=False) + "\n").encode("utf-8"))
    path.write_bytes(buf.getvalue())


def summary(groups: list[dict]) -> None:
    by = collections.defaultdict(list)
    for g in groups:
        by[(g["label"], g["kind"])].append(g)
    for (label, kind), gs in sorted(by.items()):
        ns = [len(g["responses"]) for g in gs]
        extra = f"max shared line {max(shared_line_share(g['responses']) for g in gs):.2f}" if label == "clean" else \
            f"share_true {min(g['share_true'] for g in gs):.2f}-{max(g['share_true'] for g in gs):.2f}"
        print(f"{label:8s} {kind:32s} {len(gs):3d} groups  n {min(ns)}-{max(ns)}  {extra}")
    labels = collections.Counter(g["label"] for g in groups)
    print(f"total {len(groups)} groups: {dict(labels)}; {sum(len(g['responses']) for g in groups)} responses; "
          f"{len({g['template_name'] for g in groups if g['template_name']})} distinct templates")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=HERE.parents[2] / "shared" / "data")
    ap.add_argument("--out", type=Path, default=HERE / "heldout.jsonl.gz")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    groups = build(args.data, args.seed)
    write(groups, args.out)
    summary(groups)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
