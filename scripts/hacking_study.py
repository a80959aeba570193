"""Reward hacking, shown and caught (issue 15): the study's one command. See src/judgerl/study/run.py.

    python scripts/hacking_study.py --config configs/study/hacking.yaml               # every stage
    python scripts/hacking_study.py --config configs/study/hacking.yaml --stage gold  # one stage
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from judgerl.study.run import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
