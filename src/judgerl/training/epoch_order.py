"""Prompt order that a resumed GRPO run reproduces: the order of epoch e depends on (seed, e) only.

TRL's RepeatSampler shuffles each epoch with the next draw of one generator seeded once, so epoch e's order is the
(e+1)-th permutation this *process* drew. transformers 5 resumes a run past its first epoch without iterating the
skipped epochs (it only calls `set_epoch`), so a run resumed in or at the start of epoch e >= 1 replays epoch 0's
order: the steps after the resume see other prompts than the uninterrupted run did (found by the sharded kill/resume
test when its kill landed after checkpoint-2, an epoch boundary: step 3's grad norm 14.18 against 12.50).

`EpochRepeatSampler.set_epoch(e)` (which accelerate's data loader forwards at every epoch start, resumed or not)
re-seeds the generator and skips e draws, so the uninterrupted order is TRL's, draw for draw, and a resumed run
gets the same.
"""

from __future__ import annotations

import torch
from trl.trainer.grpo_trainer import RepeatSampler


class EpochRepeatSampler(RepeatSampler):
    """TRL's RepeatSampler whose shuffle for epoch e is the e-th draw after seeding, whatever ran before."""

    epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle and self.seed is not None:
            self.generator.manual_seed(self.seed)
            for _ in range(self.epoch):
                torch.randperm(self.num_samples, generator=self.generator)
        return super().__iter__()

    @classmethod
    def like(cls, s: RepeatSampler) -> EpochRepeatSampler:
        return cls(data_source=s.data_source, mini_repeat_count=s.mini_repeat_count, batch_size=s.batch_size,
                   repeat_count=s.repeat_count, shuffle=s.shuffle, seed=s.seed)


def order_by_epoch(trainer):
    """Make `trainer` (a GRPOTrainer) build its train sampler as an EpochRepeatSampler; returns the trainer."""
    build = trainer._get_train_sampler

    def sampler(dataset=None):
        s = build(dataset)
        return EpochRepeatSampler.like(s) if type(s) is RepeatSampler else s
    trainer._get_train_sampler = sampler
    return trainer
