"""`validate`: score every method against a planted pair's ground truth, beside its negative controls.

For each tuning seed, the tuned model is compared with the base by the three methods (attribution:
`attribution_check`, heads: `heads_check`, FFN: `ffn_check`); the same comparison runs for the continued
model when there is one, for ``draws`` models base + noise as large as the first seed's update
(`noise.noisy_model`) and for the base against itself. A comparison's five headline tests are
Holm-adjusted together (`shiftlens.evidence.adjust`); the heads one is the planted pairs' gain beyond random
admissible pairs (`heads_check.pair_gain_finding`). Table 1 (the AUC against the base's, and followed vs
unfollowed within the model) and Table 3 are reported beside them, unadjusted. Each method's headline
effect is then set against the same effect on the noise draws (`noise_findings`, Holm over the three
methods): a shift counts only beyond what a random update of the tuning's size does. The false-positive
rate of a method is the share of noise draws it would declare: its test against the base p < 0.05 and its
effect beyond the other draws' (`declared_rate`); each test's own rate is under ``tests``. Figures of
each seed are under ``seeds``; every figure's mean, std, min and max over seeds is at the top level
(docs/validation.md lists the keys).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from shiftlens import stats
from shiftlens.architecture import input_embeddings, output_embeddings
from shiftlens.evidence import ALPHA, MIN_N, Finding, adjust
from shiftlens.heads.core import HeadPairs
from shiftlens.heads.settings import HeadsSettings
from shiftlens.models import LoadedModel, weight_source
from shiftlens.nulls import seeded_generators
from shiftlens.prompting import chat_format
from shiftlens.validation import attribution_check, ffn_check, follow, heads_check
from shiftlens.validation.defaults import DRAWS
from shiftlens.validation.inputs import ControlInputs, control_inputs
from shiftlens.validation.noise import noisy_model
from shiftlens.validation.truth import GroundTruth, GroundTruthError, read_ground_truth

HEADLINES = ("attribution", "attribution_control", "attribution_placement", "heads", "ffn")
CALIBRATED = {"attribution": "attribution_control", "heads": "heads", "ffn": "ffn"}  # method → its headline test
FPR_TESTS = {
    "attribution": "attribution_control",
    "attribution_placement": "attribution_placement",
    "attribution_score": "attribution",
    "heads": "heads",
    "heads_table3": "heads_table3",
    "ffn": "ffn",
}


@dataclass
class Features:
    """What the three methods read off one model: span scores per record, kept head pairs, FFN top words, and
    the FFN top words of the base's down-projections read through this model's output embeddings."""

    scores: attribution_check.Scores
    heads: list[HeadPairs]
    rows: dict[str, np.ndarray]
    tops: np.ndarray
    tops_base_ffn: np.ndarray


def stderr(message: str) -> None:
    """The default progress log: one line on stderr."""
    print(message, file=sys.stderr, flush=True)


class Validation:
    """One planted pair's inputs, read once: the base's features, the prompts, the word list and the plants."""

    def __init__(self, truth: GroundTruth, limit: int | None, seed: int, log: Callable[[str], None]) -> None:
        self.truth, self.seed, self.log = truth, seed, log
        records = truth.records(limit)
        self.base = truth.base.load()
        self.like = control_inputs(self.base, truth.vocab)
        self.word_index = self.like.word_index
        self.groups = ffn_check.concept_indices(truth.concepts, self.word_index)
        self.planted_keys = heads_check.planted_keys(self.word_index, truth.relations)
        self.admissible = heads_check.admissible_keys(
            self.planted_keys, self.like.pair_filter, len(self.like.vocabulary)
        )
        self.examples, self.follow_reason = follow.scorable(records)
        self.records = records
        self.prompts: attribution_check.PromptSet | None = None
        self.fmt: Any = None
        self.tokenizer: Any = None

    def chat(self, tuned: LoadedModel) -> None:
        """Fix the chat format and the prompt set from the first tuned model (its tokenizer has the template)."""
        self.tokenizer = tuned.tokenizer
        self.fmt = chat_format(tuned.tokenizer, "auto", tuned.model)
        self.prompts = attribution_check.prompt_set(self.records, tuned.model, self.fmt, tuned.tokenizer)

    def inputs(self, loaded: LoadedModel) -> ControlInputs:
        """The model's weights as the heads and FFN methods read them, with the base's word list and pair filter."""
        source, config, _, _ = weight_source(loaded)
        vocabulary = self.like.vocabulary
        words = vocabulary.vectors(input_embeddings(source, config)).double()
        output = vocabulary.vectors(output_embeddings(source, config))
        return ControlInputs(vocabulary, words, self.like.pair_filter, output, source, config)

    def features(self, loaded: LoadedModel) -> Features:
        """Run the three methods' cores on a model."""
        assert self.prompts is not None
        self.log(f"validate: explaining {loaded.name}")
        inputs = self.inputs(loaded)
        heads = heads_check.explain_heads(inputs, HeadsSettings().top_k)
        return Features(
            attribution_check.span_scores(loaded.model, self.prompts),
            heads,
            heads_check.pair_rows(heads, inputs.vocabulary.words),
            ffn_check.explain_ffn(inputs),
            ffn_check.explain_ffn(replace(self.like, output_words=inputs.output_words)),
        )

    def follow(self, loaded: LoadedModel) -> float | None:
        """The model's follow accuracy, None when the records carry no task the evaluator knows."""
        if self.follow_reason:
            return None
        return follow.follow_accuracy(loaded.model, self.fmt, self.tokenizer, self.examples)

    def compare(self, base: Features, other: Features, label: str) -> dict[str, Any]:
        """Figures of ``other`` against ``base`` and the headline findings, Holm-adjusted together."""
        assert self.prompts is not None
        truth = self.truth
        figures, found = attribution_check.compare_scores(base.scores, other.scores, self.prompts, label, self.seed)
        recall = heads_check.relation_recall(other.heads, self.word_index, truth.relations, truth.head_layers)
        recall_base = heads_check.relation_recall(base.heads, self.word_index, truth.relations, truth.head_layers)
        found["heads"], gain = heads_check.pair_gain_finding(
            heads_check.kept_pairs(base.heads, truth.head_layers),
            heads_check.kept_pairs(other.heads, truth.head_layers),
            self.planted_keys,
            self.admissible,
            label,
            self.seed,
        )
        table3 = heads_check.table3_finding(base.rows, other.rows, truth.relations, self.like.vocabulary.words)
        concepts = ffn_check.concept_recall(other.tops, self.groups)
        found["ffn"] = ffn_check.concept_finding(base.tops, other.tops, self.groups, label, self.seed)
        ffn_itself = ffn_check.concept_finding(
            other.tops_base_ffn,
            other.tops,
            self.groups,
            f"{label}'s down-projections (its embeddings held fixed)",
            self.seed,
        )
        findings = dict(zip(HEADLINES, adjust([found[name] for name in HEADLINES]), strict=True))
        figures.update(
            heads_planted_recall=recall["recall"],
            heads_planted_precision=recall["precision"],
            heads_pair_recall=recall["pair_recall"],
            heads_pair_recall_base=recall_base["pair_recall"],
            heads_recall_base=recall_base["recall"],
            heads_pair_gain=gain["observed"],
            heads_pair_gain_null=gain["null_mean"],
            heads_pair_gain_dropped=[self.like.vocabulary.words[q] for q in gain["dropped"]],
            table1_p=stats.finite(found["table1"].p_value),
            table1_reason=found["table1"].reason,
            table1_effect=stats.finite(found["table1"].effect_size),
            heads_table3_p=stats.finite(table3.p_value),
            heads_table3_reason=table3.reason,
            heads_table3_effect=stats.finite(table3.effect_size),
            ffn_planted_recall=concepts["recall"],
            ffn_recall_base=ffn_check.concept_recall(base.tops, self.groups)["recall"],
            ffn_concept_holds=concepts["holds"],
            ffn_holds_base_ffn=ffn_check.concept_recall(other.tops_base_ffn, self.groups)["holds"],
            ffn_beyond_embeddings_p=stats.finite(ffn_itself.p_value),
            ffn_beyond_embeddings_reason=ffn_itself.reason,
            ffn_beyond_embeddings_effect=stats.finite(ffn_itself.effect_size),
        )
        for name, finding in findings.items():
            figures[f"{name}_p"] = stats.finite(finding.p_value)
            figures[f"{name}_p_adjusted"] = stats.finite(finding.p_adjusted)
            figures[f"{name}_reason"] = finding.reason
            figures[f"{name}_effect"] = stats.finite(finding.effect_size)
        figures["finding"] = [f.to_json() for f in findings.values()]
        return figures


def _declared(figures: dict[str, Any], test: str) -> bool:
    """Whether a test declared a finding on its own (p < 0.05; a refused test declares nothing)."""
    p = figures[f"{test}_p"]
    return p is not None and p < ALPHA


def spread(per_seed: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean, std (ddof 1), min, max and count over seeds of every numeric figure (None where undefined)."""
    out = {}
    for key, value in per_seed[0].items():
        if isinstance(value, (list, dict, str, bool)) or key.endswith("_reason"):
            continue
        values = np.array([s[key] for s in per_seed if s.get(key) is not None], dtype=np.float64)
        summary = stats.summary_json(values)
        out[key] = {
            **summary,
            "min": stats.finite(float(values.min())) if values.size else None,
            "max": stats.finite(float(values.max())) if values.size else None,
        }
    return out


def choose_seeds(truth: GroundTruth, seeds: Sequence[str] | None) -> list[str]:
    """The tuning seeds to validate (all by default); an unknown one is a one-line error."""
    if seeds is None:
        return list(truth.tuned)
    unknown = [s for s in seeds if str(s) not in truth.tuned]
    if unknown:
        raise GroundTruthError(
            f"no tuned model for seed {', '.join(map(str, unknown))}; known: {', '.join(truth.tuned)}"
        )
    return [str(s) for s in seeds]


def validate(
    directory: str | Path | None = None,
    *,
    limit: int | None = None,
    seeds: Sequence[str] | None = None,
    draws: int = DRAWS,
    seed: int = 0,
    device: str = "cpu",
    log: Callable[[str], None] = stderr,
) -> dict[str, Any]:
    """Score every method against the ground truth of a planted pair (default: the shipped organism's assets)."""
    if directory is None:
        from shiftlens import organism

        directory = organism.data_dir()
    if draws < 0:
        raise GroundTruthError(f"--draws must be at least 0, got {draws}")
    truth = read_ground_truth(directory, device)
    chosen = choose_seeds(truth, seeds)
    run = Validation(truth, limit, seed, log)
    per_seed: dict[str, dict[str, Any]] = {}
    base_features: Features | None = None
    first: LoadedModel | None = None
    follow_base: float | None = None
    for name in chosen:
        tuned = truth.tuned[name].load()
        if first is None:
            run.chat(tuned)
            base_features = run.features(run.base)
            follow_base = run.follow(run.base)
            first = tuned
        assert base_features is not None
        figures = run.compare(base_features, run.features(tuned), f"tuning (seed {name})")
        per_seed[name] = {"follow_acc_base": follow_base, "follow_acc_tuned": run.follow(tuned), **figures}
    assert base_features is not None and first is not None and run.prompts is not None
    continued = None
    if truth.continued is not None:
        model = truth.continued.load()
        continued = {"follow_acc": run.follow(model), **run.compare(base_features, run.features(model), "continued")}
    null = []
    for draw, generator in enumerate(seeded_generators(draws, run.base.model.device, start=seed)):
        noisy = noisy_model(run.base, first, generator, draw)
        null.append(run.compare(base_features, run.features(noisy), f"noise draw {draw}"))
    same = run.compare(base_features, base_features, "the base against itself")
    for figures in [*per_seed.values(), *([continued] if continued else [])]:
        figures.update(beyond_noise_figures(figures, null))
    return stats.json_safe(
        {
            "name": truth.name,
            "directory": str(truth.directory),
            "n_prompts": len(run.records),
            "n_attributed": len(run.prompts.ids),
            "skipped": run.prompts.skipped,
            "follow_reason": run.follow_reason,
            "planted": planted(truth, run),
            **spread(list(per_seed.values())),
            "continued_vs_base": continued,
            "false_positive_rate": {
                **{method: declared_rate(null, test) for method, test in CALIBRATED.items()},
                "declared_by": "the test against the base (p < 0.05) and its effect beyond the other draws' "
                "(leave one out, p < 0.05)",
                "tests": {method: _rate(null, test) for method, test in FPR_TESTS.items()},
                "draws": draws,
                "testable_draws": {k: sum(d[f"{t}_p"] is not None for d in null) for k, t in FPR_TESTS.items()},
                "noise_of": f"seed {chosen[0]}",
                "per_draw": [{k: d[f"{t}_p"] for k, t in FPR_TESTS.items()} for d in null],
                "effect_beyond_noise": {k: beyond_noise(per_seed[chosen[0]], null, t) for k, t in FPR_TESTS.items()},
                "base_vs_base": {k: same[f"{t}_p"] for k, t in FPR_TESTS.items()},
                "base_vs_base_reasons": {k: same[f"{t}_reason"] for k, t in FPR_TESTS.items()},
            },
            "seeds": per_seed,
            "headline_tests": list(HEADLINES),
        }
    )


def _effects(null: list[dict[str, Any]], test: str) -> list[float]:
    """The noise draws' effect sizes of ``test``, where defined."""
    return [d[f"{test}_effect"] for d in null if d.get(f"{test}_effect") is not None]


def beyond_noise(tuned: dict[str, Any], null: list[dict[str, Any]], test: str) -> dict[str, Any] | None:
    """The tuned seed's effect size beside the noise draws' own (signed, the planted direction positive) and the
    share of draws at least as large: how the shift compares with a random update of its size, where counting
    the draws' significant tests alone says only that such an update changes the model."""
    effect = tuned.get(f"{test}_effect")
    effects = _effects(null, test)
    if effect is None or not effects:
        return None
    return {
        "tuned": effect,
        "noise_min": min(effects),
        "noise_max": max(effects),
        "share_at_least": sum(e >= effect for e in effects) / len(effects),
        "draws": len(effects),
    }


def noise_findings(figures: dict[str, Any], null: list[dict[str, Any]]) -> dict[str, Finding]:
    """Each method's headline effect against the same effect on the noise draws (`stats.beyond_null_finding`,
    one-sided: the planted direction), Holm-adjusted together: is the shift larger than a random update of the
    tuning's size would make? (Such an update moves every model; its own tests against the base say only that.)"""
    found = [
        stats.beyond_null_finding(
            method,
            f"the {method} effect exceeds that of base + noise as large as the tuning",
            figures.get(f"{test}_effect"),
            _effects(null, test),
        )
        for method, test in CALIBRATED.items()
    ]
    return dict(zip(CALIBRATED, adjust(found), strict=True))


def beyond_noise_figures(figures: dict[str, Any], null: list[dict[str, Any]]) -> dict[str, Any]:
    """`noise_findings` as ``{method}_noise_p``, ``_p_adjusted``, ``_reason`` and ``_effect`` figures."""
    out: dict[str, Any] = {}
    for method, finding in noise_findings(figures, null).items():
        out[f"{method}_noise_p"] = stats.finite(finding.p_value)
        out[f"{method}_noise_p_adjusted"] = stats.finite(finding.p_adjusted)
        out[f"{method}_noise_reason"] = finding.reason
        out[f"{method}_noise_effect"] = stats.finite(finding.effect_size)
    return out


def declared_rate(null: list[dict[str, Any]], test: str) -> float | None:
    """The share of noise draws a method declares a finding for: its test against the base has p < 0.05 and
    its effect exceeds the other draws' (leave one out, `stats.beyond_null_finding` p < 0.05); None when fewer
    than `evidence.MIN_N` other draws leave the second test untestable."""
    if len(null) <= MIN_N:
        return None
    declared = 0
    for j, draw in enumerate(null):
        beyond = stats.beyond_null_finding("", "", draw.get(f"{test}_effect"), _effects(null[:j] + null[j + 1 :], test))
        declared += _declared(draw, test) and beyond.p_value is not None and beyond.p_value < ALPHA
    return declared / len(null)


def _rate(null: list[dict[str, Any]], test: str) -> float | None:
    """The share of noise draws in which ``test`` declared a finding (None without draws)."""
    return sum(_declared(d, test) for d in null) / len(null) if null else None


def planted(truth: GroundTruth, run: Validation) -> dict[str, Any]:
    """What the ground truth says tuning planted, and how much of it the word list holds."""
    in_vocab = [w for r in truth.relations for w in (r.query, *r.keys) if w in run.word_index]
    return {
        "heads": {
            "relations": len(truth.relations),
            "layers": None if truth.head_layers is None else list(truth.head_layers),
            "words_in_vocabulary": len(in_vocab),
        },
        "ffn": [{"name": c.name, "task": c.task, "words": len(c.words), "in_vocabulary": int(g.size)}
                for c, g in zip(truth.concepts, run.groups)],
        "attribution": truth.attribution,
        "models": {"base": truth.base.name, "tuned": {k: v.name for k, v in truth.tuned.items()},
                   "continued": None if truth.continued is None else truth.continued.name},
    }  # fmt: skip
