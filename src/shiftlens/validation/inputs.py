"""What the controls read from a model: the heads method's word vectors and filter, W_q/W_k and down-projections.

The same inputs the methods build (`shiftlens.heads.pipeline.method_inputs`, `shiftlens.architecture`), so a
control plants into exactly what a run would read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shiftlens.architecture import attention_qk, ffn_down_rows, geometry, output_embeddings
from shiftlens.heads.core import PairFilter
from shiftlens.heads.pipeline import method_inputs
from shiftlens.heads.settings import HeadsSettings
from shiftlens.models import LoadedModel, ModelSpec, weight_source
from shiftlens.vocabulary import Vocabulary, load_vocabulary


@dataclass
class ControlInputs:
    """One model's weights as the methods read them, with its word list."""

    vocabulary: Vocabulary
    words: torch.Tensor  # the heads method's word vectors (input embeddings)
    pair_filter: PairFilter | None
    output_words: torch.Tensor  # the FFN method's word vectors (output embeddings)
    source: Any
    config: Any

    @property
    def word_index(self) -> dict[str, int]:
        """Lower-cased word → row."""
        return {w.lower(): i for i, w in enumerate(self.vocabulary.words)}

    def attention(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """W_q and W_k of a layer (norm gain folded, grouped heads expanded)."""
        return attention_qk(self.source, self.config, layer)

    def down_rows(self, layer: int) -> torch.Tensor:
        """A layer's down-projection as neuron output vectors (intermediate × hidden)."""
        return ffn_down_rows(self.source, self.config, layer)

    @property
    def n_layers(self) -> int:
        """Number of layers."""
        return geometry(self.config).n_layers


def control_inputs(
    model: ModelSpec | str | LoadedModel, vocab: str | Path, settings: HeadsSettings | None = None
) -> ControlInputs:
    """Read a model's word vectors, pair filter and weight source for the controls."""
    source, config, tokenizer, _ = weight_source(ModelSpec(model) if isinstance(model, str) else model)
    vocabulary = load_vocabulary(vocab, tokenizer)
    words, pair_filter, _ = method_inputs(vocabulary, source, config, settings or HeadsSettings())
    return ControlInputs(
        vocabulary, words, pair_filter, vocabulary.vectors(output_embeddings(source, config)), source, config
    )
