"""The generated command lines: `ModelSpec` groups, every method option in `compare`, choices from the library."""

from __future__ import annotations

import pytest

from shiftlens.attribution.core import OBJECTIVES
from shiftlens.attribution.plan import MODES
from shiftlens.attribution.settings import AttributionSettings
from shiftlens.cli.compare import compare_settings, model_specs
from shiftlens.cli.main import build_parser
from shiftlens.compare.settings import CompareSettings
from shiftlens.errors import ShiftlensError
from shiftlens.evidence import PROTOCOLS
from shiftlens.ffn.annotate import Sampling
from shiftlens.ffn.annotation_settings import AnnotationSettings
from shiftlens.ffn.annotators import KINDS, EndpointSettings
from shiftlens.ffn.settings import FfnSettings
from shiftlens.heads.settings import HeadsSettings
from shiftlens.models import DTYPES, ModelSpec

COMPARE = ["compare", "B", "T", "--data", "d.jsonl", "--vocab", "v.tsv", "--out", "o"]


def parse(argv: list[str]):
    return build_parser().parse_args(argv)


def choices(argv: list[str], flag: str) -> tuple:
    parser = build_parser()._subparsers._group_actions[0].choices[argv[0]]
    return next(tuple(a.choices) for a in parser._actions if flag in a.option_strings)


def test_compare_exposes_every_method_option_prefixed():
    text = " ".join(build_parser()._subparsers._group_actions[0].choices["compare"].format_help().split())
    flags = ["--attribution-objective", "--attribution-mode", "--attribution-memory-budget", "--heads-candidates"]
    flags += ["--heads-max-pairs", "--heads-z", "--ffn-words-per-component", "--ffn-components", "--annotation-runs"]
    flags += ["--annotation-words", "--annotator-endpoint", "--annotator-temperature", "--base-adapter"]
    flags += ["--base-gguf-file", "--tuned-gguf-file", "--tuned-adapter", "--dtype", "--trust-remote-code"]
    for flag in flags:
        assert flag in text, flag
    assert "--heads-candidates N candidate words per dimension and side (default: 100)" in text
    assert "--top-k" not in text and "--annotation-endpoint" not in text  # old spellings: hidden, deprecated
    assert "--attribution-generate" not in text and "--attribution-chat-template" not in text  # compare's own


def test_choices_come_from_the_library():
    assert choices(COMPARE, "--attribution-objective") == OBJECTIVES
    assert choices(COMPARE, "--attribution-mode") == tuple(MODES)
    assert choices(COMPARE, "--dtype") == tuple(DTYPES)
    assert choices(COMPARE, "--annotator") == (*KINDS, None)
    assert choices(COMPARE, "--protocol") == tuple(PROTOCOLS)
    assert choices(["annotate", "x"], "--annotator") == KINDS
    assert choices(["attribute"], "--objective") == OBJECTIVES


def test_compare_flags_build_the_settings_and_specs():
    args = parse([*COMPARE, "--attribution-objective", "logit", "--heads-top-k", "7", "--heads-max-pairs", "3",
                  "--ffn-top-k", "9", "--annotation-runs", "2", "--annotator", "none", "--methods", "heads,ffn",
                  "--dtype", "bfloat16", "--tuned-adapter", "lora", "--base-gguf-file", "b.gguf", "--layers", "0-1",
                  "--protocol", "paper", "--null-draws", "0", "--annotation-temperature", "0.2"])  # fmt: skip
    assert compare_settings(args) == CompareSettings(
        methods=("heads", "ffn"),
        layers=(0, 1),
        annotator=None,
        protocol="paper",
        null_draws=0,
        attribution=AttributionSettings(objective="logit"),
        heads=HeadsSettings(top_k=7, max_pairs=3),
        ffn=FfnSettings(top_k=9),
        annotation=AnnotationSettings(runs=2),
        endpoint=EndpointSettings(sampling=Sampling(temperature=0.2)),
    )
    assert model_specs(args) == {
        "base": ModelSpec("B", gguf_file="b.gguf", dtype="bfloat16"),
        "tuned": ModelSpec("T", adapter="lora", dtype="bfloat16"),
    }
    settings = compare_settings(args)
    assert settings.heads.layers == settings.ffn.layers == (0, 1) and settings.annotation.protocol == "paper"


def test_defaults_and_the_old_spellings():
    assert compare_settings(parse(COMPARE)) == CompareSettings()
    assert model_specs(parse(COMPARE)) == {"base": ModelSpec("B"), "tuned": ModelSpec("T")}
    old = parse([*COMPARE, "--top-k", "5", "--components", "4", "--cooccurrence", "none", "--max-new-tokens", "8",
                 "--limit", "3", "--vocab-top", "50", "--endpoint", "http://x/v1", "--model", "m"])  # fmt: skip
    settings = compare_settings(old)
    assert (settings.heads.top_k, settings.heads.cooccurrence, settings.ffn.components) == (5, "none", 4)
    assert (settings.attribution.max_new_tokens, settings.attribution.limit, settings.ffn.vocab_top) == (8, 3, 50)
    assert (settings.endpoint.endpoint, settings.endpoint.model) == ("http://x/v1", "m")


def test_demo_has_the_compare_options_with_its_own_defaults():
    settings = compare_settings(parse(["demo", "--limit", "6", "--heads-top-k", "3"]))
    assert settings.attribution == AttributionSettings(max_new_tokens=60, limit=6) and settings.heads.top_k == 3


@pytest.mark.parametrize("command", ["attribute", "heads", "ffn"])
def test_every_command_has_the_model_group(command):
    inputs = ["--data", "d"] if command == "attribute" else ["--vocab", "v"]
    args = parse([command, "--model", "m", *inputs, "--out", "o", "--adapter", "a", "--trust-remote-code"])
    assert (args.model, args.adapter, args.trust_remote_code, args.device) == ("m", "a", True, "auto")  # issue 16
    assert hasattr(args, "dtype") == (command != "heads")  # the heads read the weights as stored


def test_compare_settings_share_their_options_and_refuse_what_compare_sets():
    settings = CompareSettings(layers=(1,), annotator="lexical", protocol="paper")
    assert settings.heads.layers == settings.ffn.layers == (1,)
    assert (settings.annotation.annotator, settings.annotation.protocol) == ("lexical", "paper")
    with pytest.raises(ShiftlensError, match="compare sets the attribution's chat_template itself"):
        CompareSettings(attribution=AttributionSettings(chat_template="none"))
    with pytest.raises(ShiftlensError, match="--methods must be one of attribution, heads, ffn, got 'bogus'"):
        CompareSettings(methods=("heads", "bogus"))
    with pytest.raises(ShiftlensError, match="--methods must be among"):
        CompareSettings(methods=())


def test_no_spelling_compare_had_is_lost():
    before = "--allow-different-tokenizers --annotation-runs --annotator --base-gguf-file --components --cooccurrence"
    before += " --data --device --dtype --endpoint --instruction-verbs --layers --limit --max-new-tokens --methods"
    before += " --model --null-draws --out --protocol --ratings --responses --top-k --trust-remote-code"
    before += " --tuned-adapter --tuned-gguf-file --vocab --vocab-top"  # `compare --help` at 814b8ef
    parser = build_parser()._subparsers._group_actions[0].choices["compare"]
    assert set(before.split()) <= {s for a in parser._actions for s in a.option_strings}
