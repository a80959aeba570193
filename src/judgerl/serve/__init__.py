"""`judgerl serve`: a judge behind an HTTP reward endpoint for RL engines (OpenRLHF, verl, anything).

Rewards come from train-policy's own reward callables (expected score; pairwise in-group win rate with
the same schemes and failure policy), with the judge's cache and ledger, cross-request micro-batching,
a bound on requests in flight, /health, /metrics and graceful shutdown. See app.py for the routes.
"""

from judgerl.serve.config import ServeConfig
from judgerl.serve.service import RewardService, local_service

__all__ = ["RewardService", "ServeConfig", "local_service"]
