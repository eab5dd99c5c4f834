"""Per-token divergence of two models teacher-forced on the same ids: KL(tuned ‖ base), both probabilities and ranks.

Pure tensor functions on the logits that predict each response token (row j predicts token ``ids[j]``), so
any caller that ran one forward per model gets every statistic without another pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TokenDivergence:
    """Per response token: KL(tuned ‖ base) in nats, the token's probability and rank (0 = top) under each model."""

    kl: torch.Tensor
    p_base: torch.Tensor
    p_tuned: torch.Tensor
    rank_base: torch.Tensor
    rank_tuned: torch.Tensor

    def arrays(self) -> dict[str, torch.Tensor]:
        """The fields by name (for storage)."""
        return dict(vars(self))


def token_ranks(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """How many vocabulary entries have a strictly higher logit than the token's (0: the model's top choice)."""
    chosen = logits.gather(-1, ids[:, None])
    return (logits > chosen).sum(-1)


def token_divergence(base_logits: torch.Tensor, tuned_logits: torch.Tensor, ids: torch.Tensor) -> TokenDivergence:
    """`TokenDivergence` of logits (M × V) from each model for the M tokens ``ids``, computed in float64."""
    if base_logits.shape != tuned_logits.shape:
        raise ValueError(f"logits differ in shape: {tuple(base_logits.shape)} vs {tuple(tuned_logits.shape)}")
    log_base = torch.log_softmax(base_logits.double(), dim=-1)
    log_tuned = torch.log_softmax(tuned_logits.double(), dim=-1)
    kl = (log_tuned.exp() * (log_tuned - log_base)).sum(-1).clamp_min(0.0)
    pick = ids[:, None]
    return TokenDivergence(
        kl=kl,
        p_base=log_base.gather(-1, pick)[:, 0].exp(),
        p_tuned=log_tuned.gather(-1, pick)[:, 0].exp(),
        rank_base=token_ranks(base_logits, ids),
        rank_tuned=token_ranks(tuned_logits, ids),
    )


def response_logits(model: torch.nn.Module, input_ids: torch.Tensor, response_positions: torch.Tensor) -> torch.Tensor:
    """The logits (M × V) that predict each response token: one forward, the rows before each response position."""
    with torch.no_grad():
        logits = model(input_ids=input_ids[None]).logits[0]
    return logits[response_positions - 1]
