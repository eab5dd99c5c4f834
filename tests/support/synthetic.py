"""Synthetic results with realistic shapes, for the report's tests, benchmark and a quick look at the layout.

Attribution matrices are heavy-tailed signed noise (Student t, 3 d.o.f.) with a planted signal (the
tuned model's response leans on the instruction rows); token texts include markup and control characters
so escaping is exercised.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shiftlens.attribution.records import ExampleAttribution
from shiftlens.report.payload import examples_payload

GROUPS = ("self_instruct", "lima", "mt_bench")
WORDS = (
    "the model should answer question about history data list write short poem explain why code "
    "python function summary story table please three reasons simple words friendly tone"
).split()
TRICKY = ("</script><b>x</b>", "&amp;", '"quoted"', "\n", "<!--", "\u2028", "🙂")


def _tokens(rng: np.random.Generator, count: int, tricky: bool) -> list[str]:
    tokens = [" " + str(w) for w in rng.choice(WORDS, size=count)]
    if tricky and count:
        for i, t in enumerate(TRICKY[: max(1, count // 3)]):
            tokens[(i * 7) % count] = t
    return tokens


def _offsets(tokens: list[str]) -> list[tuple[int, int]]:
    """[start, end) character offsets of tokens laid end to end."""
    ends = np.cumsum([len(t) for t in tokens]).tolist()
    return [(end - len(t), end) for t, end in zip(tokens, ends)]


def _record(
    example_id: str,
    prompt: list[str],
    response: list[str],
    mask: np.ndarray,
    matrix: np.ndarray,
    group: str,
    rating: float,
) -> ExampleAttribution:
    return ExampleAttribution(
        id=example_id,
        prompt="".join(prompt),
        response="".join(response),
        prompt_tokens=prompt,
        prompt_offsets=_offsets(prompt),
        response_tokens=response,
        response_offsets=_offsets(response),
        instruction_mask=[bool(x) for x in mask],
        attribution=matrix.astype(np.float32),
        group=group,
        rating=rating,
    )


def synthetic_records(
    n_examples: int, prompt_len: int = 40, response_len: int = 60, *, seed: int = 0, same_response: bool = True
) -> tuple[list[ExampleAttribution], list[ExampleAttribution]]:
    """Paired base and tuned records; ``same_response=False`` gives each model its own response length."""
    rng = np.random.default_rng(seed)
    base, tuned = [], []
    for k in range(n_examples):
        n = max(2, int(rng.normal(prompt_len, prompt_len * 0.2)))
        m_base = max(2, int(rng.normal(response_len, response_len * 0.2)))
        m_tuned = m_base if same_response else max(2, int(rng.normal(response_len, response_len * 0.2)))
        prompt = _tokens(rng, n, tricky=k % 5 == 0)
        mask = np.zeros(n, dtype=bool)
        mask[: max(1, n // 5)] = True
        group, rating = GROUPS[k % len(GROUPS)], float(1 + k % 4)
        response_base = _tokens(rng, m_base, tricky=False)
        response_tuned = response_base if same_response else _tokens(rng, m_tuned, tricky=False)
        for out, response, lift in ((base, response_base, 1.0), (tuned, response_tuned, 3.0)):
            matrix = rng.standard_t(3, size=(n, len(response)))
            matrix[mask] *= lift
            out.append(_record(f"ex-{k:04d}", prompt, list(response), mask, matrix, group, rating))
    return base, tuned


def synthetic_results(
    n_examples: int = 20, prompt_len: int = 40, response_len: int = 60, *, seed: int = 0, same_response: bool = True
) -> dict[str, Any]:
    """A results dict with every section filled (statistics are made up, shapes are real)."""
    base, tuned = synthetic_records(n_examples, prompt_len, response_len, seed=seed, same_response=same_response)
    examples = examples_payload(base, tuned)
    stat = lambda mean, n: {"mean": mean, "std": mean / 4, "n": n}  # noqa: E731
    scores = [
        {
            "id": e["id"],
            "group": e["group"],
            "rating": e["rating"],
            "base": e["base"]["score"],
            "tuned": e["tuned"]["score"],
        }
        for e in examples["examples"]
    ]
    return {
        "meta": {
            "models": [
                {"role": "base", "name": "synthetic-base", "weight_hash": "0" * 16, "dtype": "float32"},
                {"role": "tuned", "name": "synthetic-tuned", "weight_hash": "f" * 16, "dtype": "float32"},
            ],
            "parameters": {"levels": 10, "threshold": 7, "p": 4},
            "versions": {"shiftlens": "0.1.0"},
            "timings": {"attribution_s": 12.5},
        },
        "instructions": {
            "table1": {
                g: {"followed": stat(0.45, 50), "unfollowed": stat(0.3, 20), "p_value": 0.01, "auc": 0.66}
                for g in ("all", *GROUPS)
            },
            "table2": {
                "all": {"base": stat(0.32, 632), "tuned": stat(0.41, 632), "p_value": 0.003, "paired_p_value": 1e-5},
                **{g: {"base": stat(0.3, 200), "tuned": stat(0.33, 200), "p_value": 0.2} for g in GROUPS},
            },
            "position_profile": {
                "base": [0.5 - 0.03 * i for i in range(10)],
                "tuned": [0.8 - 0.05 * i for i in range(10)],
            },
            "scores": scores,
        },
        "heads": {
            "groups": [
                {
                    "layers": [lo, lo + 7],
                    "instruction": stat(0.6 - lo / 100, 40),
                    "general": stat(0.45, 900),
                    "p_value": 0.001 * (lo + 1),
                }
                for lo in (0, 8, 16, 24)
            ],
            "head_overlap_by_layer": [{"layer": i, "mean": 0.8 - i / 60, "heads": [0.7, 0.9]} for i in range(30)],
            "examples": {"write": ["write=poem", "write=essay"], "list": ["list=items"]},
        },
        "ffn": {
            "tasks": {
                c: {
                    "base": {"mean": 0.1 + i / 50, "std": 0.01},
                    "tuned": {"mean": 0.1 + i / 40, "std": 0.01},
                    "p_value": 0.04 * i,
                }
                for i, c in enumerate(("writing", "coding", "math", "translation"))
            },
            "levels": {
                c: {"base": {"mean": 0.3, "std": 0.02}, "tuned": {"mean": 0.35, "std": 0.02}, "p_value": 0.2}
                for c in ("phonology", "morphology", "syntax", "semantics")
            },
            "per_layer_group": [
                {
                    "group": g,
                    "layers": [g * 4, g * 4 + 3],
                    "tasks": {"writing": {"base": 0.1, "tuned": 0.2}},
                    "levels": {"syntax": {"base": 0.3, "tuned": 0.25}},
                }
                for g in range(8)
            ],
            "rotation_by_layer": [
                {
                    "layer": i,
                    "n_components": 8,
                    "mean_principal_angle_deg": 20 + i,
                    "matched_abs_cos_mean": 0.9 - i / 50,
                    "word_overlap_mean": 0.6 - i / 80,
                }
                for i in range(30)
            ],
            "matched_examples": [
                {
                    "layer": 3,
                    "base_component": 0,
                    "tuned_component": 1,
                    "abs_cos": 0.93,
                    "word_overlap": 0.4,
                    "base_words": ["poem", "verse", "<rhyme>"],
                    "tuned_words": ["poem", "write", "stanza"],
                }
            ],
            "annotations": {
                "base": {"annotator": "lexical", "heuristic": True},
                "tuned": {"annotator": "lexical", "heuristic": True},
                "heuristic": True,
            },
        },
        "diff": synthetic_diff([e["id"] for e in examples["examples"]]),
        "examples": examples,
    }


def synthetic_diff(ids: list[str], layers: int = 4) -> dict[str, Any]:
    """A "Where tuning acted" section: a LoRA-like map (q and v changed), per-token KL beside its null."""
    modules = [{"layer": -1, "module": m, "rel_frobenius": 0.0, "effective_rank": 0} for m in ("embed", "final_norm")]
    for layer in range(layers):
        for m in ("q", "k", "v", "o", "gate", "up", "down", "attn_norm", "mlp_norm"):
            changed = m in ("q", "v")
            modules.append({"layer": layer, "module": m, "rel_frobenius": 0.01 * (layer + 1) if changed else 0.0,
                            "effective_rank": 2 if changed else 0, "effective_rank_null": 30 if changed else 0,
                            "principal_angle_deg": 3.0 * layer if changed else 0.0,
                            "principal_angle_null_deg": 1.0 if changed else 0.0})  # fmt: skip
    heads = [{"layer": i, "module": m, "head": h, "rel_frobenius": 0.01 * h} for i in range(layers) for m in "qkvo"
             for h in range(4)]  # fmt: skip
    bins = [{"bin": b, "mean_kl": 0.1 + b / 50, "mean_kl_null": 0.01, "tokens": 30} for b in range(10)]
    top = [{"id": ids[i % len(ids)], "position": i, "token": "</script><b>x</b>" if i == 0 else f"t{i}",
            "kl": 2.0 - i / 10, "kl_null": 0.02, "p_base": 0.1, "p_tuned": 0.8, "rank_base": 5, "rank_tuned": 0}
           for i in range(5)]  # fmt: skip
    lens = {"mean_probability_by_layer_base": [0.1, 0.2, 0.3, 0.4],
            "mean_probability_by_layer_tuned": [0.1, 0.3, 0.5, 0.6],
            "tokens_formed": {"base": 10, "tuned": 12, "both": 9},
            "mean_formation_layer": {"base": 2.5, "tuned": 2.0, "tuned_minus_base": -0.5}}  # fmt: skip
    tokens = {"mean_kl": 0.2, "mean_kl_null": 0.01, "by_relative_position": bins, "top_tokens": top,
              "logit_lens": lens, "examples": len(ids)}  # fmt: skip
    finding = {"method": "diff", "claim": "tuned diverges more than its null", "testable": True, "reason": None,
               "p_value": 0.001, "p_adjusted": None, "significant": False, "effect_size": 1.2,
               "ci": [0.8, 1.6]}  # fmt: skip
    return {"not_run": {}, "nulls": "noise of the tuning's size", "finding": [finding], "modules": modules,
            "heads": heads, "tokens": tokens}  # fmt: skip
