"""Which real answers a group is drawn from: one pool (one answering model) and a selection rule.

Every function returns (pool name, items) with 16..96 items, each to a different prompt. The same rules feed
clean groups and the material that templates are injected into, so a detector cannot tell the two by source.
"""

from __future__ import annotations

import collections
import random
import re

from sources import Item

OPENER = re.compile(r"^(Sure|Certainly|Of course|Absolutely|Great question|Here (is|are)|Here's|Okay|Below (is|are)|"
                    r"Hello|Hi)\b")
CLOSER = re.compile(r"(hope (this|that|these|you) (helps|help|enjoy)|let me know|feel free to|happy to help|"
                    r"good luck|have fun)", re.I)
DISCLAIMER = re.compile(r"\bas an ai\b|\bI'?m an ai\b|\bI am an ai\b|language model", re.I)
TASKS = {"recipe": r"\brecipes?\b", "email-or-letter": r"\b(e-?mail|letter)\b", "story": r"\bstory\b",
         "summary": r"\bsummar", "poem": r"\bpoem|haiku|limerick"}
MIN, MAX = 16, 96


def size(rng: random.Random, available: int) -> int:
    """Log-uniform between 16 and 96, capped by what the pool holds."""
    if available < MIN:
        raise ValueError(f"only {available} items")
    return max(MIN, min(available, MAX, round(MIN * 6 ** rng.random())))


def general_pools(pools: dict) -> list[str]:
    return sorted(n for n in pools if n.split(":")[0] in ("alpaca-eval", "arena-hard-v0.1", "arena-hard-v2.0",
                                                           "pandalm"))


def pick(rng, pools, names, pred) -> tuple[str, list[Item]]:
    """A random pool among `names` holding >= 16 items that satisfy pred; a random sized subset of them."""
    ok = [(n, [it for it in pools[n] if pred(it)]) for n in names]
    ok = [(n, items) for n, items in ok if len(items) >= MIN]
    if not ok:
        raise ValueError("no pool has 16 matching items")
    name, items = rng.choice(ok)
    return name, rng.sample(items, size(rng, len(items)))


def enriched(rng, pools, names, match, lo, hi, min_match) -> tuple[str, list[Item]]:
    """A pool's answers where a share in [lo, hi] match `match` (real conventions at a chosen rate)."""
    ok = []
    for n in names:
        yes = [it for it in pools[n] if match(it)]
        no = [it for it in pools[n] if not match(it)]
        if len(yes) >= min_match and len(no) >= MIN:
            ok.append((n, yes, no))
    name, yes, no = rng.choice(ok)
    frac = rng.uniform(lo, hi)
    n = size(rng, min(MAX, int(len(yes) / frac), len(no) + len(yes)))
    m = min(len(yes), max(1, round(frac * n)))
    items = rng.sample(yes, m) + rng.sample(no, min(len(no), n - m))
    rng.shuffle(items)
    return name, items


def looping(text: str) -> bool:
    sents = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text)
             if len(s.strip()) > 15 and len(re.findall(r"[A-Za-z]{2,}", s)) >= 3]  # not separator lines
    c = collections.Counter(sents)
    return bool(c) and c.most_common(1)[0][1] >= 3


def english(it: Item) -> bool:
    return it.lang == "en"


def material(kind: str, rng: random.Random, pools: dict) -> tuple[str, list[Item]]:
    gen = general_pools(pools)
    if kind == "general":
        return pick(rng, pools, gen, english)
    if kind in ("zh", "ru"):
        return pick(rng, pools, [n for n in gen if n.startswith("arena-hard-v2.0")], lambda it: it.lang == kind)
    if kind in ("code", "short", "markdown", "poem", "list-only"):
        tag = kind.replace("-only", "")
        return pick(rng, pools, sorted(pools), lambda it: tag in it.tags and (english(it) or tag == "code"))
    if kind == "short-human":  # Self-Instruct's human-written answers: labels, yes/no, numbers
        return pick(rng, pools, ["self-instruct:human"], lambda it: "short" in it.tags and english(it))
    if kind == "list":
        return enriched(rng, pools, gen, lambda it: "list" in it.tags, 0.8, 0.95, 40)
    if kind == "polite":
        return enriched(rng, pools, gen, lambda it: bool(OPENER.match(it.response)) and english(it), 0.5, 0.9, 30)
    if kind == "closers":
        return enriched(rng, pools, gen, lambda it: bool(CLOSER.search(it.response[-250:])), 0.5, 0.9, 20)
    if kind == "disclaimer":
        return enriched(rng, pools, gen, lambda it: bool(DISCLAIMER.search(it.response)), 0.1, 0.2, 12)
    if kind == "loopy":
        return enriched(rng, pools, gen, lambda it: looping(it.response), 0.3, 0.5, 15)
    if kind == "story":
        return pick(rng, pools, [n for n in pools if n.startswith("eq-bench:")], lambda it: True)
    if kind == "math":
        return pick(rng, pools, gen, lambda it: "math" in it.tags and english(it))
    if kind == "hh":
        return pick(rng, pools, ["hh-rlhf:chosen"], lambda it: True)
    if kind == "concise":
        return pick(rng, pools, [n for n in gen if n.endswith("_concise")], lambda it: True)
    if kind == "pandalm":
        return pick(rng, pools, [n for n in gen if n.startswith("pandalm:")], lambda it: True)
    if kind == "tasktype":
        return same_task(rng, pools, [n for n in gen if n.startswith("alpaca-eval:")])
    if kind == "similar":
        return similar_prompts(rng, pools, [n for n in gen if n.startswith("arena-hard-v0.1")])
    raise ValueError(kind)


def same_task(rng, pools, names) -> tuple[str, list[Item]]:
    """Answers to prompts of one or two task types (recipes, emails/letters, stories, summaries, poems)."""
    name = rng.choice(names)
    tasks = sorted(TASKS)
    rng.shuffle(tasks)
    chosen, items = [], []
    for t in tasks:
        chosen.append(t)
        items += [it for it in pools[name] if re.search(TASKS[t], it.prompt[:300], re.I) and it not in items]
        if len(items) >= MIN:
            break
    return f"{name} ({'+'.join(chosen)})", rng.sample(items, size(rng, len(items)))


def similar_prompts(rng, pools, names) -> tuple[str, list[Item]]:
    """Arena-Hard v0.1 picked its prompts two per topic cluster: both answers of several clusters."""
    name = rng.choice(names)
    clusters = collections.defaultdict(list)
    for it in pools[name]:
        for t in it.tags:
            if t.startswith("cluster="):
                clusters[t].append(it)
    pairs = [v for k, v in sorted(clusters.items()) if len(v) == 2]
    n = size(rng, 2 * len(pairs)) // 2
    items = [it for pair in rng.sample(pairs, n) for it in pair]
    rng.shuffle(items)
    return name, items
