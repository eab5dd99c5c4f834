"""The steps of a comparison: each one's own identity, what a rerun does with it, and how each runs.

A step (a method for one model) stores, in its unit of the comparison run, the settings that fix its
output (``identity``) and those that only extend it (``extent``: the examples, the layers). A rerun with
another identity deletes that step's run directory and redoes it; another extent, or a damaged unit in
its run directory, reruns it (the step's run computes only what is missing). Settings that fix every
step (the models, the examples' content, the attribution's) are the comparison's own identity.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from shiftlens.attribution.pipeline import RunFailures, attribute
from shiftlens.compare.settings import CompareSettings
from shiftlens.config import identity
from shiftlens.examples import Example
from shiftlens.ffn.annotators import build_annotator
from shiftlens.ffn.answer_cache import CACHE_FILE
from shiftlens.models import LoadedModel, ModelSpec
from shiftlens.runs.changes import describe_changes
from shiftlens.runs.lifecycle import remove_run
from shiftlens.storage import RunDirectory, damaged_units, file_sha256

NULL_UNIT = "null-baselines"  # the seeded null draws, computed once both models finished their methods
DIFF_UNIT = "diff"  # where tuning acted: the weight map and per-token divergence, both models at once


def step_name(method: str, role: str) -> str:
    """The unit recording that ``method`` finished for the ``role`` model (e.g. "heads-base")."""
    return f"{method}-{role}"


def step_dir(out: Path, method: str, role: str) -> Path:
    """The run directory a step writes."""
    if method == "annotate":
        return out / "ffn" / role / "annotations"
    if method == DIFF_UNIT:
        return out / DIFF_UNIT / "tokens"
    return out / method / role


def example_key(example: Example) -> str:
    """A short hash of everything an example holds (prompt, response, spans, rating, group)."""
    return hashlib.sha256(json.dumps(asdict(example), sort_keys=True).encode()).hexdigest()[:12]


def comparison_identity(
    specs: dict[str, ModelSpec], examples: Sequence[Example], settings: CompareSettings
) -> dict[str, Any]:
    """What fixes every step: the models (not where they run), the examples (a longer list extends), attribution."""
    return {
        "models": {role: {k: v for k, v in s.record().items() if k != "device"} for role, s in specs.items()},
        "example_ids": [e.id for e in examples],
        "example_sha256": [example_key(e) for e in examples],
        "settings": {"responses": settings.responses, "attribution": identity(settings.attribution)},
    }


GROWING = ("example_ids", "example_sha256")  # a larger --limit extends a comparison


class Steps:
    """The identity and extent of every step, and each step's run into its own directory of the comparison."""

    def __init__(
        self, out: Path, examples: Sequence[Example], vocab: Path, settings: CompareSettings, chat_template: str
    ) -> None:
        self.out, self.examples, self.vocab, self.settings = out, examples, vocab, settings
        self.chat_template = chat_template
        s, words = settings, file_sha256(vocab)
        heads = {"vocab_sha256": words, "heads": identity(s.heads)}
        ffn = {"vocab_sha256": words, "ffn": identity(s.ffn)}
        annotation = {"annotation": identity(s.annotation), "endpoint": identity(s.endpoint)}
        layers = {"layers": None if s.layers is None else list(s.layers)}
        self.keys: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
            "attribution": ({}, {"example_ids": [e.id for e in examples]}),
            "heads": (heads, layers),
            "ffn": (ffn, layers),
            "annotate": ({**ffn, **annotation}, layers),
            NULL_UNIT: ({"null_draws": s.null_draws, **heads, **ffn}, layers),
            DIFF_UNIT: ({"null_seed": self.diff_null_seed}, {"example_ids": [e.id for e in examples]}),
        }

    @property
    def diff_null_seed(self) -> int | None:
        """The seed of the diff step's nulls: one draw beside the heads and FFN bands (none without them)."""
        return 0 if self.settings.null_draws else None

    def plan(self, run: RunDirectory, method: str, role: str | None, log: Callable[[str], None]) -> bool:
        """Whether a step is to run: missing, extended, damaged or changed (then its old run is deleted first)."""
        name = step_name(method, role) if role else method
        fixed, extent = self.keys[method]
        if not run.has_unit(name):
            return True
        meta = run.read_unit(name)[0]
        if meta.get("identity", fixed) != fixed:
            changes = "; ".join(describe_changes(meta.get("identity") or {}, fixed))
            log(f"{name}: settings changed ({changes}); redoing that step")
            run.remove_unit(name)
            if role is not None or method == DIFF_UNIT:
                keep = (CACHE_FILE,) if method == "annotate" else ()  # answers stay valid (keyed by question)
                remove_run(step_dir(self.out, method, role), f"{name} settings changed", keep=keep)
            return True
        damaged = damaged_units(step_dir(self.out, method, role)) if role or method == DIFF_UNIT else []
        if damaged:
            log(f"{name}: {len(damaged)} damaged units ({', '.join(damaged[:3])}); recomputing them")
        return bool(damaged) or meta.get("extent", extent) != extent

    def done(self, run: RunDirectory, name: str, method: str, seconds: float, **meta: Any) -> None:
        """Record a finished step with its identity and extent."""
        fixed, extent = self.keys[method]
        run.write_unit(name, {"seconds": round(seconds, 3), "identity": fixed, "extent": extent, **meta})

    def attribution(self, lm: LoadedModel, role: str) -> None:
        """Attribution of the responses: the tuned model's by default, each model's own, or the data's."""
        responses = self.settings.responses
        explains_tuned = role == "base" and responses == "tuned"
        settings = replace(
            self.settings.attribution,
            chat_template=self.chat_template,
            responses_from=str(self.out / "attribution" / "tuned") if explains_tuned else None,
            generate_responses=responses == "each" or (responses == "tuned" and role == "tuned"),
            ratings=None,  # the examples are read, limited and rated once, by `compare`
            limit=None,
        )
        allow = self.settings.allow_different_tokenizers  # checked by compare, and said in the report
        attribute(lm, self.examples, self.out / "attribution" / role, settings, allow_other_tokenizer=allow)

    def heads(self, lm: LoadedModel, role: str) -> None:
        """Word pairs of every attention head."""
        from shiftlens.heads.pipeline import explain_heads

        explain_heads(lm, self.vocab, self.out / "heads" / role, self.settings.heads)

    def ffn(self, lm: LoadedModel, role: str) -> None:
        """Principal components of every FFN down-projection as word lists."""
        from shiftlens.ffn.pipeline import explain_ffn

        explain_ffn(lm, self.vocab, self.out / "ffn" / role, self.settings.ffn)

    def diff(self, specs: dict[str, ModelSpec], tokenizer_difference: str | None) -> dict[str, Any]:
        """The weight map into diff/weights.parquet and the per-token run into diff/tokens, on the responses the
        attribution explains (the tuned model's, or the data's); what could not run is returned with its reason."""
        from shiftlens.attribution.pipeline import responses_of
        from shiftlens.diff.run import diff_weights
        from shiftlens.diff.tokens import diff_tokens
        from shiftlens.diff.weights import WeightDiffError

        base, tuned, out, notes = specs["base"], specs["tuned"], self.out / DIFF_UNIT, {}
        same_base = tuned.adapter and (tuned.name, tuned.gguf_file) == (base.name, base.gguf_file) and not base.adapter
        try:
            adapter = tuned.adapter if same_base else None
            shapes = self.settings.allow_different_tokenizers  # their embeddings differ; the layers may not
            other = None if adapter else tuned
            diff_weights(
                base, other, out, adapter=adapter, null_seed=self.diff_null_seed, allow_different_shapes=shapes
            )
        except WeightDiffError as exc:
            notes["weights"] = f"the weights cannot be compared one by one: {exc}"
        if tokenizer_difference is not None:
            notes["tokens"] = f"the tokenizers differ ({tokenizer_difference}): no per-token divergence"
            return notes
        examples = list(self.examples)
        explained = self.out / "attribution" / "tuned"
        if self.settings.responses != "data" and (explained / "manifest.json").exists():
            responses = responses_of(explained)  # the tuned model's replies, which both models explain
            examples = [replace(e, response=responses[e.id]) for e in examples if e.id in responses]
        try:
            tokens = step_dir(self.out, DIFF_UNIT, None)
            limit = self.settings.attribution.max_new_tokens
            diff_tokens(
                base.load(), tuned.load(), examples, tokens, max_new_tokens=limit, null_seed=self.diff_null_seed
            )
        except RunFailures as exc:
            notes["tokens"] = f"{len(exc.failed)} examples failed (reasons in diff/tokens/manifest.json)"
        return notes

    def annotate(self, lm: LoadedModel | None, role: str) -> None:
        """Concept labels of the FFN components (needs no model: an annotator reads the word lists)."""
        from shiftlens.ffn.annotate import annotate_ffn

        ffn_dir, settings = self.out / "ffn" / role, self.settings.annotation
        setup = build_annotator(
            settings.annotator,
            step_dir(self.out, "annotate", role),
            self.settings.endpoint,
            settings.runs,
            protocol=settings.protocol,
        )
        try:
            annotate_ffn(ffn_dir, setup.annotator, replace(settings, runs=setup.runs))
        finally:
            setup.close()
