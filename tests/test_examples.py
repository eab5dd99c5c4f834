"""Example files: the paper's TSV and ratings (real files), JSONL, every malformed case naming file and line,
and `load_examples` (the runs' one entry point)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from shiftlens.errors import ShiftlensError
from shiftlens.examples import (
    DataError,
    Example,
    group_of,
    load_examples,
    read_examples,
    read_ratings,
    tsv_spans,
    with_ratings,
)

HEADER = "ID\tPrompt\tResponse\tInstruct&Context\n"
RATING_HEADER = "File\tModel\tPrompt\tReference\tInstruct\tResponse\tRating\n"


def write(tmp_path, name, text: str | bytes):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def jsonl(tmp_path, *records):
    return write(tmp_path, "data.jsonl", "".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in records))


def test_group_of_maps_the_paper_prefixes():
    assert group_of("user_oriented_task_12") == "self_instruct"
    assert group_of("lima_author_3") == "lima"
    assert group_of("mtbench_writing_81") == "mt_bench"
    assert group_of("my_prompt") == "other"


def test_real_final_dataset(paper_data):
    examples = read_examples(paper_data / "datasets" / "FinalDataset.tsv")
    assert len(examples) == 632 and len({e.id for e in examples}) == 632
    assert Counter(e.group for e in examples) == {"lima": 300, "self_instruct": 252, "mt_bench": 80}
    first = examples[0]
    assert first.id == "user_oriented_task_0" and "\n\nInput: If you have" in first.prompt and "/n" not in first.prompt
    assert first.response.startswith("If you have any questions")
    assert [first.prompt[s:e] for s, e in first.instruction] == [
        "The sentence you are given might be too wordy, complicated, or unclear. Rewrite the sentence and make "
        "your writing clearer by keeping it concise. Whenever possible, break complex sentences into multiple "
        "sentences and eliminate unnecessary words.",
        "Input:",
    ]
    assert [first.prompt[s:e] for s, e in first.context] == [
        "If you have any questions about my rate or if you find it necessary to increase or decrease the scope "
        "for this project, please let me know."
    ]
    travel = next(e for e in examples if e.id == "mtbench_writing_81")  # three fragments of one sentence
    assert [travel.prompt[s:e] for s, e in travel.instruction] == [
        "Compose an engaging travel blog post about a recent trip to Hawaii, highlighting cultural experiences "
        "and must-see attractions."
    ]
    for e in examples:
        assert e.instruction and all(0 <= s < t <= len(e.prompt) for s, t in [*e.instruction, *e.context])


def test_real_ratings(paper_data):
    path = paper_data / "datasets" / "AnnotatedDataset.tsv"
    ratings = read_ratings(path)  # only vicuna_7B is rated; alpaca_7B rows are all -1 (not rated)
    assert len(ratings) == 629 and Counter(ratings.values()) == {4.0: 427, 1.0: 113, 2.0: 59, 3.0: 30}
    assert ratings["user_oriented_task_0"] == 4.0
    assert read_ratings(path, model="vicuna_7B") == ratings
    assert read_ratings(path, model="alpaca_7B") == {}
    with pytest.raises(DataError, match="no ratings of model 'gpt'; it has alpaca_7B, vicuna_7B"):
        read_ratings(path, model="gpt")


def test_jsonl_fields_aliases_and_defaults(tmp_path):
    path = jsonl(
        tmp_path,
        {"id": "lima_author_1", "prompt": "Write a poem. About 海.", "instruction": ["Write a poem.", [14, 20]]},
        "\n",
        {"id": 7, "prompt": "Hi", "response": "Hello", "instruction_spans": [[0, 2]], "rating": 3, "group": "g"},
        {"id": "c", "prompt": "P", "context": ["P"], "extra": "ignored", "control_spans": [[0, 1]], "position": "last"},
    )
    a, b, c = read_examples(path)  # a planted pair's validation fields (control_spans, position) are not span typos
    assert a == Example("lima_author_1", "Write a poem. About 海.", None, ["Write a poem.", (14, 20)], [], None, "lima")
    assert b == Example("7", "Hi", "Hello", [(0, 2)], [], 3.0, "g")
    assert c.context == ["P"] and c.group == "other" and c.instruction == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"prompt": "p"}), "field 'id' is missing"),
        (json.dumps({"id": "x"}), "field 'prompt' is missing"),
        (json.dumps({"id": "x", "prompt": "  "}), "field 'prompt' is empty"),
        (json.dumps({"id": "x", "prompt": "p", "response": ""}), "field 'response' is empty"),
        (json.dumps({"id": "x", "prompt": "p", "instruction": "p"}), "must be a list"),
        (json.dumps({"id": "x", "prompt": "p", "instruction": [1]}), "span 1 in 'instruction'"),
        (json.dumps({"id": "x", "prompt": "p", "instruction": ["q"]}), "span 'q' not found"),
        (json.dumps({"id": "x", "prompt": "p", "instruction": [[0, 5]]}), r"span \[0, 5\] is not"),
        (json.dumps({"id": "x", "prompt": "p", "instruction": [], "instruction_spans": []}), "not both"),
        (json.dumps({"id": "x", "prompt": "p", "rating": "good"}), "rating must be a finite number"),
        (json.dumps({"id": "a", "prompt": "p"}), "duplicate id 'a' \\(first on line 1\\)"),
    ],
)
def test_malformed_jsonl_names_file_and_line(tmp_path, line, message):
    path = jsonl(tmp_path, {"id": "a", "prompt": "p"}, "\n", line + "\n")
    with pytest.raises(DataError, match=message) as info:
        read_examples(path)
    assert f"{path}:3:" in str(info.value)


def test_non_utf8_names_the_line(tmp_path):
    path = write(tmp_path, "data.jsonl", b'{"id": "a", "prompt": "p"}\n{"id": "b", "prompt": "caf\xe9"}\n')
    with pytest.raises(DataError, match=f"{path}:2: not valid UTF-8"):
        read_examples(path)
    tsv = write(tmp_path, "d.tsv", HEADER.encode() + b"x\tp\xff\tr\tp\n")
    with pytest.raises(DataError, match=f"{tsv}:2: not valid UTF-8"):
        read_examples(tsv)


def test_tsv_newlines_and_spans(tmp_path):
    prompt = "Say hi to Ann. Be brief./nInput: Ann is here./nOutput:"
    path = write(tmp_path, "d.tsv", HEADER + f"mtbench_x_1\t{prompt}\tHi/nAnn\tbrief|||Input: &&&is here\n\n")
    (example,) = read_examples(path)
    assert example.prompt == "Say hi to Ann. Be brief.\nInput: Ann is here.\nOutput:" and example.response == "Hi\nAnn"
    assert [example.prompt[s:e] for s, e in example.instruction] == ["Be brief.", "Input:"]
    assert [example.prompt[s:e] for s, e in example.context] == ["Ann is here."]
    assert example.group == "mt_bench"


def test_tsv_spans_without_context_and_repeated_fragments():
    instruction, context = tsv_spans("Do it now. Then rest.", "Do|||now|||rest", "x")
    assert instruction == [(0, 10), (11, 21)] and context == []


@pytest.mark.parametrize(
    ("body", "message", "line"),
    [
        ("a\tp\tr\n", "3 tab-separated columns, expected 4", 2),
        ("a\tp\tr\tp\textra\n", "5 tab-separated columns", 2),
        ("a\tp\t \tp\n", "empty 'Response' field", 2),
        ("a\tp\tr\tp\nb\tq\tr\tz\n", "span 'z' not found", 3),
        ("a\tp\tr\tp\na\tp\tr\tp\n", "duplicate id 'a'", 3),
        ("a\tp\tr\t&&&p\n", "has no instruction span", 2),
    ],
)
def test_malformed_tsv_names_file_and_line(tmp_path, body, message, line):
    path = write(tmp_path, "d.tsv", HEADER + body)
    with pytest.raises(DataError, match=message) as info:
        read_examples(path)
    assert f"{path}:{line}:" in str(info.value)


def test_bad_header_empty_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match=r"d.tsv:1: header must be ID \| Prompt"):
        read_examples(write(tmp_path, "d.tsv", "id\tprompt\n"))
    with pytest.raises(DataError, match="empty file"):
        read_examples(write(tmp_path, "e.tsv", ""))
    with pytest.raises(DataError, match="unknown data format '.csv'"):
        read_examples(write(tmp_path, "d.csv", "x"))
    with pytest.raises(DataError, match="cannot read"):
        read_examples(tmp_path / "missing.jsonl")


def test_ratings_errors_and_join(tmp_path):
    row = "a.pkl\tm1\tp\tr\ti\tresp\t{}\n"
    path = write(tmp_path, "r.tsv", RATING_HEADER + row.format(4) + row.format(-1).replace("a.pkl", "b.pkl"))
    assert read_ratings(path) == {"a": 4.0}
    twice = write(tmp_path, "r2.tsv", RATING_HEADER + row.format(4) + row.format(2).replace("m1", "m2"))
    with pytest.raises(DataError, match="r2.tsv:3: 'a' is rated again .*model m1"):
        read_ratings(twice)
    assert read_ratings(twice, model="m2") == {"a": 2.0}
    with pytest.raises(DataError, match="r3.tsv:2: rating 'good' is not a number"):
        read_ratings(write(tmp_path, "r3.tsv", RATING_HEADER + row.format("good")))
    joined = with_ratings([Example("a", "p", rating=1.0), Example("b", "p")], {"a": 4.0})
    assert [e.rating for e in joined] == [4.0, None]


def test_load_examples_joins_ratings_keeps_the_first_and_refuses_duplicates(tmp_path):
    path = jsonl(tmp_path, {"id": "lima_author_1", "prompt": "p"}, {"id": "b", "prompt": "q", "rating": 1})
    ratings = write(tmp_path, "r.tsv", RATING_HEADER + "b.pkl\tm\tq\tr\ti\tresp\t5\n")
    examples = load_examples(path, ratings, None)
    assert [(e.id, e.group, e.rating) for e in examples] == [("lima_author_1", "lima", None), ("b", "other", 5.0)]
    assert [e.id for e in load_examples([Example("x", "p"), Example("y", "p")], {"y": 2.0}, 1)] == ["x"]
    with pytest.raises(ShiftlensError, match=r"duplicate example ids: \['x'\]"):
        load_examples([Example("x", "p"), Example("x", "q")], None, None)
    with pytest.raises(ShiftlensError, match="--limit must be at least 1, got 0"):
        load_examples(path, None, 0)
