"""Adapters that let RL engines other than TRL use judgerl judges (verl; OpenRLHF uses `judgerl serve`)."""
