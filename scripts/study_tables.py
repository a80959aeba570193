"""Re-draw the contrast study's analysis, figures and write-up tables from a committed study folder.

    python scripts/study_tables.py docs/experiments/reward_hacking/contrast [--distance-prompts 16] [--no-distance | --cached-distance]

Runs the study's own `analyze` (study.json, figures under <folder>/analysis/) with the folder's own config.yaml (the
config its last stage ran with; configs/study/hacking.yaml when there is none) pointed at the folder, renders the tables (judgerl.study.writeup) to <folder>/analysis/tables.md, and puts them
between the `<!-- tables ... -->` markers of docs/experiments/reward_hacking.md.
"""

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from judgerl.study.analyze import analyze  # noqa: E402
from judgerl.study.run import load_config  # noqa: E402
from judgerl.study.writeup import render_file  # noqa: E402

DOC = ROOT / "docs/experiments/reward_hacking.md"
BLOCK = re.compile(r"(<!-- tables:[^\n]*-->\n)(.*?)(<!-- /tables -->\n)", re.S)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--distance-prompts", type=int, default=16, help="Monitor prompts per point re-read by the base "
                    "model for the distance (NLL shift); 16 keeps a 2-core CPU run to minutes.")
    ap.add_argument("--no-distance", action="store_true", help="Skip the distance (no model needed).")
    ap.add_argument("--cached-distance", action="store_true", help="Distances only where base_nll.json already has "
                    "them (no model needed; the other points have none).")
    a = ap.parse_args()
    overrides = [f"run_dir={a.folder}", "device=cpu", f"distance_prompts={a.distance_prompts}"]
    own = a.folder / "config.yaml"  # the config the study's last stage ran with (aliases such as sft-best resolve
    cfg = load_config(str(own if own.is_file() else ROOT / "configs/study/hacking.yaml"), overrides)  # as they ran)
    analyze(cfg, a.folder, print, distance="cached" if a.cached_distance else not a.no_distance)
    tables = render_file(a.folder / "analysis" / "study.json", a.folder / "analysis" / "tables.md", level=2)
    rel = a.folder.resolve().relative_to(DOC.parent.resolve())
    figs = "".join(f"![{p.stem}]({rel}/analysis/{p.name})\n\n" for p in sorted((a.folder / "analysis").glob("*.png")))
    text = DOC.read_text(encoding="utf-8")
    if not BLOCK.search(text):
        print(f"error: no <!-- tables --> block in {DOC}", file=sys.stderr)
        return 2
    DOC.write_text(BLOCK.sub(lambda m: m.group(1) + figs + tables.rstrip() + "\n\n" + m.group(3), text, count=1),
                   encoding="utf-8")
    print(f"tables and {figs.count('![')} figures written into {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
