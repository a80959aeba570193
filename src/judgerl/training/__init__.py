"""Training stages: judge SFT / GRPO / reward model (issue 4) and policy GRPO (issue 5), thin wrappers over TRL."""
