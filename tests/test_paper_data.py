"""The released data: SentencePiece offsets, pickle validation, span mapping on real examples, `reproduce`."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from shiftlens.cli.main import main
from shiftlens.paper_data import (
    PaperDataError,
    decode_pieces,
    load_paper_runs,
    prompt_offsets,
    read_released_example,
)
from shiftlens.safe_pickle import load_restricted


def test_decode_pieces_spaces_newlines_and_multibyte_bytes():
    pieces = ["▁Hi", "▁", "▁there", "<0x0A>", "<0xF0>", "<0x9F>", "<0xA7>", "<0x99>", "▁é", "!"]
    text, offsets = decode_pieces(pieces)
    assert text == "Hi  there\n🧙 é!"
    assert [text[s:e] for s, e in offsets] == ["Hi", " ", "there", "\n", "🧙", "🧙", "🧙", "🧙", "é", "!"]


def test_decode_pieces_invalid_bytes_become_replacement_characters():
    text, offsets = decode_pieces(["▁a", "<0xFF>", "<0xE8>", "b"])
    assert text == "a\ufffd\ufffdb"
    assert offsets == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_prompt_offsets_refuse_a_different_text():
    with pytest.raises(PaperDataError, match=r"x\.pkl.*character 6"):
        prompt_offsets(["▁Hello", "▁world"], "Hello World", "x.pkl")


def test_released_pickle_validation(tmp_path):
    def dump(obj):
        path = tmp_path / "bad.pkl"
        path.write_bytes(pickle.dumps(obj))
        return path

    good = {"ID": "a", "Input": ["▁x", "▁y"], "Output": ["▁z"], "Explain": np.zeros((2, 1), np.float32)}
    assert read_released_example(dump(good))["ID"] == "a"
    empty = read_released_example(dump({**good, "Output": [], "Explain": np.zeros(0, np.float32)}))
    assert empty["Explain"].shape == (2, 0)
    with pytest.raises(PaperDataError, match=r"bad\.pkl.*keys ID, Input, Output, Explain"):
        read_released_example(dump({"ID": "a"}))
    with pytest.raises(PaperDataError, match=r"bad\.pkl: Explain is \(3, 1\) but there are 2 Input"):
        read_released_example(dump({**good, "Explain": np.zeros((3, 1))}))
    with pytest.raises(PaperDataError, match="lists of strings"):
        read_released_example(dump({**good, "Input": "▁x▁y"}))


@pytest.fixture(scope="module")
def runs(paper_data):
    return load_paper_runs(paper_data)


def masked_pieces(record) -> str:
    """The instruction tokens' piece strings joined, ▁ shown as a space."""
    return "".join(t for t, m in zip(record.prompt_tokens, record.instruction_mask) if m).replace("▁", " ")


def test_every_released_input_decodes_to_its_prompt(runs):
    assert len(runs.base) == len(runs.tuned) == 632 and not any(runs.dropped.values())
    for record in runs.base + runs.tuned:
        for i, (token, (s, e)) in enumerate(zip(record.prompt_tokens, record.prompt_offsets)):
            # a piece's range leaves out its leading ▁ unless it is all ▁ (minus the dummy prefix space)
            expected = token.replace("▁", "") or " " * (len(token) - (i == 0))
            if not token.startswith("<0x"):
                assert record.prompt[s:e] == expected


HAND_CHECKED = {
    # "Input:" fragment kept apart from its context; the context's first token "▁If" is not an instruction.
    "user_oriented_task_0": (
        " The sentence you are given might be too wordy, complicated, or unclear. Rewrite the sentence and make "
        "your writing clearer by keeping it concise. Whenever possible, break complex sentences into multiple "
        "sentences and eliminate unnecessary words.Input:",
        "▁If",
    ),
    # A newline token inside the instruction, quotes, and a second "Function:" fragment.
    "user_oriented_task_15": (
        " We have entered the home supplies budget in the following table. Calculate the last column with the "
        "given function and rewrite the completed table.<0x0A>Note that, columns in a row are separated using a "
        'comma, and rows are separated using a "|".Input:Function: column2 * column 3',
        "▁Item",
    ),
    # Instruction after the context; fragment grown to the sentence ending in a quoted "|".
    "user_oriented_task_19": (
        'Make a table chart showing items, the number, and the price of these items. Separate columns with "|".',
        "▁I",
    ),
    # A sentence broken by a newline in the middle of the instruction.
    "user_oriented_task_42": (
        " Write a simple guide for uploading the bibliography database<0x0A> on Overleaf.",
        None,
    ),
    # Emoji as raw byte tokens: every byte of a character follows that character.
    "user_oriented_task_185": (
        " The story of a movie has been described using many emojis. You need to guess the name of the movie "
        "based on the emojis.Input: <0xF0><0x9F><0xA7><0x99>\u200d♂️<0xF0><0x9F><0x9A><0xAA><0xF0><0x9F><0x93>"
        "<0x9A><0xF0><0x9F><0xA6><0x85><0xE2><0x9A><0xA1>",
        None,
    ),
    # Two instruction sentences, the whole prompt (LIMA).
    "lima_author_137": (
        " Pretend to be a character in a post-apocalyptic world. Describe how you survive and the allies you "
        "encounter.",
        None,
    ),
}


@pytest.mark.parametrize("example_id", sorted(HAND_CHECKED))
def test_span_masks_on_real_token_strings(runs, example_id):
    expected, first_context_token = HAND_CHECKED[example_id]
    for record in (next(r for r in run if r.id == example_id) for run in (runs.base, runs.tuned)):
        assert masked_pieces(record) == expected
        if first_context_token:
            index = record.prompt_tokens.index(first_context_token)
            assert not record.instruction_mask[index] and record.instruction_mask[index - 1]


def test_ratings_join_the_tuned_run_only(runs):
    tuned = {r.id: r.rating for r in runs.tuned}
    assert tuned["user_oriented_task_0"] == 4.0 and all(r.rating is None for r in runs.base)
    assert sum(rating is None for rating in tuned.values()) == 3  # the three -1 ("not rated") rows


def test_missing_layout_is_a_clear_error(tmp_path):
    (tmp_path / "datasets").mkdir()
    with pytest.raises(PaperDataError, match=r"missing datasets/FinalDataset\.tsv"):
        load_paper_runs(tmp_path)


def _independent_counts(paper_data):
    """Table 1 counts straight from the raw files: vicuna ratings and Output lengths."""
    rows = [line.split("\t") for line in (paper_data / "datasets/AnnotatedDataset.tsv").read_text().splitlines()[1:]]
    rating = {r[0].removesuffix(".pkl"): float(r[6]) for r in rows if r[1] == "vicuna_7B"}
    directory = paper_data / "results/attribution_interpret/ifa_vicuna_7b"
    long_enough = {p.stem for p in directory.glob("*.pkl") if len(load_restricted(p)["Output"]) >= 5}
    followed = sum(rating[i] >= 2 for i in long_enough)
    unfollowed = sum(0 < rating[i] < 2 for i in long_enough)
    return followed, unfollowed, len(long_enough)


def test_reproduce_end_to_end(paper_data, tmp_path, capsys):
    """The paper protocol by default: b = 7 applied, Table 2 over every example; every cell p < 0.04."""
    out, json_path = tmp_path / "out", tmp_path / "r.json"
    assert main(["reproduce", str(paper_data), "--out", str(out), "--json", str(json_path)]) == 0
    result = json.loads(json_path.read_text(), parse_constant=pytest.fail)  # strict JSON: no NaN/Infinity
    assert result["protocol"] == "paper" and result["params"]["threshold"] == 7 and result["params"]["ddof"] == 0
    for group in ("self_instruct", "lima", "mt_bench"):
        t1, t2 = result["table1"][group], result["table2"][group]
        for side in ("followed", "unfollowed"):
            assert set(t1[side]) == {"mean", "std", "n"}
        assert 0 <= t1["auc"] <= 1
        assert set(t2) >= {"base", "tuned", "p_value", "paired_p_value", "effect_size"}
    for table in ("table1", "table2"):  # the paper reports p < 0.04 in every cell; computed, not fitted
        assert all(row["p_value"] < 0.04 for row in result[table].values()), table
    followed, unfollowed, _ = _independent_counts(paper_data)
    assert result["table1"]["all"]["followed"]["n"] == followed
    assert result["table1"]["all"]["unfollowed"]["n"] == unfollowed
    assert result["table2"]["all"]["tuned"]["n"] == result["table2"]["all"]["base"]["n"] == 632
    assert len(result["finding"]) == 8 and all(f["significant"] for f in result["finding"])
    profile = result["position_profile"]
    assert len(profile["base"]) == len(profile["tuned"]) == 10
    assert all(0 < v <= 1 for v in profile["base"] + profile["tuned"])
    assert (out / "figures" / "position_profile.svg").exists() and (out / "table1.csv").exists()
    assert (out / "findings.csv").read_text().count("\n") == 9
    assert "Table 2" in capsys.readouterr().out


def test_reproduce_under_the_sound_protocol(paper_data, tmp_path):
    json_path = tmp_path / "r.json"
    assert main(["reproduce", str(paper_data), "--protocol", "sound", "--json", str(json_path)]) == 0
    result = json.loads(json_path.read_text(), parse_constant=pytest.fail)
    assert result["protocol"] == "sound" and result["params"]["ddof"] == 1
    followed, unfollowed, tuned_n = _independent_counts(paper_data)
    assert result["table2"]["all"]["tuned"]["n"] == tuned_n
    assert sum(result["table2"][g]["base"]["n"] for g in ("self_instruct", "lima", "mt_bench")) == 631
    nulls = result["nulls"]
    assert nulls["n"] + len(nulls["left_out"]["no_control_span"]) == result["table2"]["all"]["n_paired"]
    assert len(result["finding"]) == 4 + 4 + 1 + 3


def test_paper_protocol_spans_strip_the_input_label(paper_data):
    """user_oriented_task_0: the "Input:" fragment is an instruction token under the sound rule only."""
    (record,) = [r for r in load_paper_runs(paper_data, protocol="paper").base if r.id == "user_oriented_task_0"]
    masked = masked_pieces(record)
    assert masked.endswith("eliminate unnecessary words.") and "Input" not in masked


@pytest.mark.slow
def test_no_instruction_token_touches_its_span_only_by_whitespace(paper_data, smollm2):
    """With a byte-level BPE tokenizer (SmolLM2) on all 632 prompts: 39 such tokens before the fix."""
    from shiftlens.examples import read_paper_tsv
    from shiftlens.prompting import encode
    from shiftlens.spans import token_mask

    for example in read_paper_tsv(paper_data / "datasets" / "FinalDataset.tsv"):
        offsets = encode(smollm2.tokenizer, example.prompt).offsets
        for (a, b), marked in zip(offsets, token_mask(offsets, example.instruction)):
            if marked and a < b:
                overlap = "".join(example.prompt[max(a, s) : min(b, e)] for s, e in example.instruction)
                inside = any(s <= a and b <= e for s, e in example.instruction)
                assert overlap.strip() or inside, (example.id, example.prompt[a:b])
