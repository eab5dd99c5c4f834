"""One example explained: its response (from a run, the data or generated), its model input, its matrix."""

from __future__ import annotations

from shiftlens.attribution import core
from shiftlens.attribution.records import ExampleAttribution
from shiftlens.attribution.settings import AttributionSettings
from shiftlens.data import Example
from shiftlens.errors import ShiftlensError
from shiftlens.loading import LoadedModel
from shiftlens.prompting import ChatFormat, build_sequence, generate
from shiftlens.spans import locate_all, token_mask


class Explainer:
    """Explains one example at a time with a loaded model and fixed settings."""

    def __init__(
        self, lm: LoadedModel, fmt: ChatFormat, settings: AttributionSettings, responses: dict[str, str] | None
    ):
        self.lm, self.fmt, self.settings, self.responses = lm, fmt, settings, responses

    def response(self, example: Example) -> tuple[str, str]:
        """The response text to explain and where it came from (run, data or generated)."""
        if self.responses is not None:
            if example.id not in self.responses:
                raise ShiftlensError(f"example {example.id!r}: no response for it in --responses-from")
            return self.responses[example.id], "run"
        if example.response is not None and not self.settings.generate_responses:
            return example.response, "data"
        text = generate(
            self.lm.model,
            self.fmt,
            self.lm.tokenizer,
            example.prompt,
            self.settings.max_new_tokens,
            example.id,
        )
        return text, "generated"

    def __call__(self, example: Example) -> ExampleAttribution:
        """The attribution record of one example."""
        response, source = self.response(example)
        seq = build_sequence(self.lm.model, self.fmt, self.lm.tokenizer, example.prompt, response, example.id)
        instruction = locate_all(example.prompt, example.instruction, example.id)
        context = locate_all(example.prompt, example.context, example.id)
        plans: list[core.Plan] = []
        matrix = core.attribute(
            self.lm.model,
            seq.input_ids,
            seq.prompt_positions,
            seq.response_positions,
            objective=self.settings.objective,
            mode=self.settings.mode,
            chunk_size=self.settings.chunk_size,
            memory_budget=self.settings.memory_budget,
            report=plans.append,
        )
        return ExampleAttribution(
            id=example.id,
            prompt=example.prompt,
            response=response,
            prompt_tokens=seq.prompt.tokens,
            prompt_offsets=seq.prompt.offsets,
            response_tokens=seq.response.tokens,
            response_offsets=seq.response.offsets,
            instruction_mask=token_mask(seq.prompt.offsets, instruction).tolist(),
            attribution=matrix.numpy(),
            group=example.group,
            rating=example.rating,
            instruction_spans=instruction,
            extra={
                "context_spans": context,
                "response_source": source,
                "sequence_length": len(seq.input_ids),
                "speed": plans[0].to_json(),  # how this example was computed; never part of the run's identity
            },
        )
