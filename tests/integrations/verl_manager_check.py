"""Run with a Python that has verl 0.9.1 installed (plus judgerl --no-deps): scores rollouts through verl's
real reward-loop manager (`NaiveRewardManager.run_single`, concurrently as `RewardLoopWorker.compute_score_batch`
does) with `judgerl.integrations.verl.compute_score` loaded by verl's own `get_custom_reward_fn`.

    python verl_manager_check.py TOKENIZER_DIR JUDGERL_URL INPUT.json  -> JSON lines of run_single outputs
"""

import asyncio
import json
import sys

import numpy as np
import torch
from omegaconf import OmegaConf
from transformers import AutoTokenizer

import verl
from verl import DataProto
from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
from verl.trainer.ppo.reward import get_custom_reward_fn


def batch(tok, prompts, responses) -> DataProto:
    p = [tok.apply_chat_template([{"role": "user", "content": x}], add_generation_prompt=True, tokenize=False)
         for x in prompts]
    tok.padding_side = "left"
    pe = tok(p, return_tensors="pt", padding=True, add_special_tokens=False)
    tok.padding_side = "right"
    re = tok([r + tok.eos_token for r in responses], return_tensors="pt", padding=True, add_special_tokens=False)
    return DataProto.from_dict(
        tensors={"prompts": pe["input_ids"], "responses": re["input_ids"],
                 "input_ids": torch.cat([pe["input_ids"], re["input_ids"]], 1),
                 "attention_mask": torch.cat([pe["attention_mask"], re["attention_mask"]], 1)},
        non_tensors={"data_source": np.array(["judgerl/check"] * len(prompts), dtype=object),
                     "reward_model": np.array([{"ground_truth": None} for _ in prompts], dtype=object),
                     "extra_info": np.array([{"question": x, "index": i} for i, x in enumerate(prompts)], dtype=object)})


def main(tok_dir, url, path):
    data = json.load(open(path))
    config = OmegaConf.create({"reward": {"custom_reward_function": {
        "path": "pkg://judgerl.integrations.verl", "name": "compute_score", "reward_kwargs": {"judgerl_url": url}}}})
    tok = AutoTokenizer.from_pretrained(tok_dir)
    manager = NaiveRewardManager(config, tok, get_custom_reward_fn(config))
    dp = batch(tok, data["prompts"], data["responses"])
    outs = manager.loop.run_until_complete(
        asyncio.gather(*[manager.run_single(dp[i:i + 1]) for i in range(len(dp))]))
    print(json.dumps({"verl": verl.__version__, "outputs": outs}, default=float))


if __name__ == "__main__":
    main(*sys.argv[1:])
