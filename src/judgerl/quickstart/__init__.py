"""`judgerl quickstart`: the paper's loop offline on two CPU cores, with numbers that carry signal.

    [train-judge] -> policy runs against the weak judge, the reasoning judge and the gold itself (gold monitor +
    hacking alarm), and beside them (a second lane, lanes.py) labels (held-out gold) -> judges (agreement, n >= 100,
    95% CIs) -> probes; then summary, report

Modules: config (QuickstartConfig, size presets), data (prompt sets, held-out answers and labels), judges (judge
sources, the CPU-trained judge, agreement), policies (the three GRPO runs, paired changes), summary (the five
lines and the proxy-vs-gold figure), stages (skip/resume bookkeeping, quiet console), lanes (the second thread; the policy runs' monitor scoring goes
there too), thread_cpu (CPU seconds per lane, cpu_lanes.json), loop (the order).

Every model is SmolLM2-135M-Instruct: the gold is the package's Bradley-Terry reward model (a LoRA adapter on it,
judgerl/study/gold_rm: 92% vs GPT-4-Turbo on held-out AlpacaEval pairs, 70% on MT-Bench expert votes), the judges
are the base model prompted or the contrast study's shipped adapters (QuickstartConfig.weak_judge /
reasoning_judge), the policy is the base model. Sizes and what was tried to make them move on CPU:
docs/quickstart.md.
"""

from judgerl.quickstart.config import SCALES, QuickstartConfig
from judgerl.quickstart.loop import Quickstart, where

__all__ = ["SCALES", "Quickstart", "QuickstartConfig", "where"]
