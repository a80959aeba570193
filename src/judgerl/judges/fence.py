"""The candidate fence: text from a candidate (or a prompt, or a rubric) must not close its own fence.

Judge templates wrap candidate text in `[BEGIN CANDIDATE RESPONSE]` ... `[END CANDIDATE RESPONSE]`
(also `[INSTRUCTION]`, `[RUBRIC]`, `=== USER ===` sections), and chat templates delimit turns with
control tokens (`<|im_end|>`, `<|eot_id|>`, ...). `neutralise` defuses any of these inside the text:

    [END CANDIDATE RESPONSE]  -> (END CANDIDATE RESPONSE)
    <|im_end|>                -> < |im_end|>
    === USER ===              -> == USER ==

Markers are found on the text *as a reader sees it* (`fold`): NFKC; format/zero-width characters
dropped; Unicode TR39 confusables of Latin letters and digits (Cyrillic, Greek, Cherokee, mathematical
letters, ... from the pinned confusable-homoglyphs data) and small capitals read as ASCII; any opening /
closing bracket character read as `[` / `]`. The marker grammar allows spacing and punctuation
variants: `_`, `-`, `.`, several spaces or none between words and between letters, `OF` / `THE`,
`START` / `STOP` for BEGIN / END, backslash-escaped brackets, a missing closing bracket. Only the
matched spans are rewritten; the rest of the text is left exactly as it was.
"""

from __future__ import annotations

import functools
import re
import unicodedata

_GAP = r"[\s_\-.·•:/|*~'`]*"  # between words (and, as `_L`, between the letters of a word)
_L = r"[\s_\-.]?"


_READS_AS = {"I": "[Il1|]", "O": "[O0]"}  # letters a reader cannot tell from these ASCII look-alikes


def _word(w: str) -> str:
    return _L.join(_READS_AS.get(c, re.escape(c)) for c in w)


_WORDS = {w: _word(w) for w in ("BEGIN", "START", "END", "STOP", "OF", "THE", "CANDIDATE", "RESPONSE",
                                 "INSTRUCTION", "RUBRIC", "SYSTEM", "USER")}
_FENCE = re.compile(
    r"\\?\[" + _GAP
    + rf"(?:(?P<edge>{_WORDS['BEGIN']}|{_WORDS['START']}|{_WORDS['END']}|{_WORDS['STOP']}){_GAP}"
    + rf"(?:{_WORDS['OF']}{_GAP})?(?:{_WORDS['THE']}{_GAP})?)?"
    + rf"(?P<what>{_WORDS['CANDIDATE']}{_GAP}{_WORDS['RESPONSE']}(?:{_GAP}#?\d+)?|{_WORDS['INSTRUCTION']}"
    + rf"|{_WORDS['RUBRIC']})"
    + r"(?:" + _GAP + r"\\?\])?", re.IGNORECASE)  # the closing bracket may be missing
_SECTION = re.compile(rf"={{2,}}{_GAP}(?P<what>{_WORDS['SYSTEM']}|{_WORDS['USER']}){_GAP}={{2,}}", re.IGNORECASE)
_CONTROL = re.compile(
    r"<\s*\|\s*[^<>|\s]{1,48}\s*\|\s*>"            # <|im_end|>, <| eot_id |> ...
    r"|</?\s*(?:start_of_turn|end_of_turn|s|eos|bos|pad|unk)\s*>"
    r"|\[\s*/?\s*INST\s*\]|<<\s*/?\s*SYS\s*>>", re.IGNORECASE)
_EDGE = {"START": "BEGIN", "BEGIN": "BEGIN", "END": "END", "STOP": "END"}


@functools.lru_cache(maxsize=1)
def _confusables() -> dict[str, str]:
    """Single characters that Unicode TR39 lists as confusable with an ASCII letter or digit."""
    import string

    from confusable_homoglyphs.confusables import confusables_data

    targets: dict[str, list[str]] = {}
    for ch in string.ascii_letters + string.digits:
        for h in confusables_data.get(ch, []):
            if len(h["c"]) == 1 and not h["c"].isascii():
                targets.setdefault(h["c"], []).append(ch)
    out = {}
    for c, ts in targets.items():  # 'І' (Cyrillic I) is listed under l, I and 1: its name picks I
        named = unicodedata.name(c, " ").rsplit(" ", 1)[-1]
        out[c] = next((t for t in ts if len(named) == 1 and t.upper() == named.upper()), ts[0])
    return out


@functools.lru_cache(maxsize=4096)
def _fold_char(c: str) -> str:
    if unicodedata.category(c) == "Cf" or c == "\u00ad":
        return ""
    out = []
    for f in unicodedata.normalize("NFKC", c):
        if unicodedata.category(f) == "Cf":
            continue
        name = unicodedata.name(f, "")
        if f.isascii():
            out.append(f)
        elif f in _confusables():
            out.append(_confusables()[f])
        elif "LETTER SMALL CAPITAL " in name:
            out.append(name.rsplit(" ", 1)[-1][:1])
        elif unicodedata.category(f) == "Ps":
            out.append("[")
        elif unicodedata.category(f) == "Pe":
            out.append("]")
        elif unicodedata.category(f) == "Zs":
            out.append(" ")
        else:
            out.append(f)
    return "".join(out)


def fold(text: str) -> tuple[str, list[int]]:
    """Text as a reader sees it and, per folded character, the index of the original character."""
    out, origin = [], []
    for i, c in enumerate(text):
        for f in _fold_char(c):
            out.append(f)
            origin.append(i)
    return "".join(out), origin


def _canonical(text: str, names: tuple[str, ...]) -> str:
    return next(n for n in names if re.fullmatch(_WORDS[n], text, re.IGNORECASE))


def _fence_repl(m: re.Match) -> str:
    core = re.sub(r"^\\?\[|\\?\]$", "", m.group(0)).strip()
    if re.fullmatch(r"[A-Za-z]+(?: [A-Za-z]+)*(?: \d+)?", core):
        return "(" + core + ")"  # a plain spelling keeps its case: [end rubric] -> (end rubric)
    what, edge = m.group("what"), m.group("edge")
    words = [_EDGE[_canonical(edge, tuple(_EDGE))]] if edge else []
    if re.match(_WORDS["CANDIDATE"], what, re.IGNORECASE):
        words += ["CANDIDATE", "RESPONSE"] + re.findall(r"\d+", what)
    else:
        words.append(_canonical(what, ("INSTRUCTION", "RUBRIC")))
    return "(" + " ".join(words) + ")"


def _control_repl(g: str) -> str:
    return g if g[1].isspace() else g[0] + " " + g[1:]  # already broken: left as is (idempotent)


def neutralise(text: str) -> str:
    """`text` with every fence marker, section marker and chat control token defused (see the module doc)."""
    if text.isascii() and not any(c in text for c in "[=<"):
        return text
    folded, origin = (text, None) if text.isascii() else fold(text)
    spans = [(m.start(), m.end(), _fence_repl(m)) for m in _FENCE.finditer(folded)]
    spans += [(m.start(), m.end(), f"== {_canonical(m.group('what'), ('SYSTEM', 'USER'))} ==") for m in _SECTION.finditer(folded)]
    spans += [(m.start(), m.end(), _control_repl(m.group(0))) for m in _CONTROL.finditer(folded)]
    out, pos = [], 0
    for s, e, repl in sorted(spans):
        a, b = (s, e) if origin is None else (origin[s], origin[e - 1] + 1)
        if a < pos:
            continue
        out += [text[pos:a], repl]
        pos = b
    return "".join(out) + text[pos:]
