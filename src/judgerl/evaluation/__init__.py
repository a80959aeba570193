"""Evaluation: Arena-Hard-V2, AlpacaEval win rates, judge probes, judge metrics and training monitors."""
