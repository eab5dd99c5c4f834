"""Bad inputs through the CLI: exit code 2, one line ``shiftlens: error: ...`` naming the file and line
or the example id, and nothing finished lost. Library-level checks of the same inputs live in
test_data.py, test_spans.py, test_prompting.py, test_loading.py and test_safe_pickle.py (see
docs/robustness.md for the whole table).
"""

from __future__ import annotations

import csv
import json
import pickle
import re

import numpy as np
import pytest
import torch
from conftest import TOKENIZER_TEXT, tiny_model, tiny_tokenizer
from test_faults import (  # noqa: F401 (one_thread: the autouse fixture)
    WORDS,
    error_line,
    one_thread,
    save_model,
    stored_units,
    unit_files,
    write_jsonl,
)

from shiftlens import organism
from shiftlens.cli.main import main
from shiftlens.ffn.records import read_ffn_run

GOOD = [
    {"id": "a", "prompt": "Summarize the following text in one sentence.", "response": "The cat sleeps."},
    {"id": "c", "prompt": "Give a synonym of happy.", "response": "Glad.", "instruction": ["Give"]},
]


def write_vocab(path, words=WORDS):
    path.write_text("".join(f"{w}\t{1.0 / (i + 1)}\n" for i, w in enumerate(words)))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A saved tiny model (context 32 positions) and a finished attribution run of two examples."""
    root = tmp_path_factory.mktemp("bad-inputs")
    model = save_model(root / "model", max_position_embeddings=32)
    run = root / "run"
    assert (
        main(
            ["attribute", "--model", str(model), "--data", str(write_jsonl(root / "good.jsonl", GOOD))]
            + [
                "--out",
                str(run),
            ]
        )
        == 0
    )
    return root, model, run


def attribute(model, data, out) -> int:
    return main(["attribute", "--model", str(model), "--data", str(data), "--out", str(out), "--max-new-tokens", "3"])


TSV_HEADER = b"ID\tPrompt\tResponse\tInstruct&Context\n"
DATA_ERRORS = [
    ("malformed-jsonl", "data.jsonl", b'{"id": "a", "prompt": "Hi."}\n{"id": "b", "prompt": \n', ":2: invalid JSON"),
    (
        "malformed-tsv",
        "data.tsv",
        TSV_HEADER + b"x\tDefine it.\tA stream.\n",
        ":2: 3 tab-separated columns, expected 4",
    ),
    (
        "non-utf8",
        "data.jsonl",
        b'{"id": "a", "prompt": "Hi."}\n{"id": "b", "prompt": "caf\xe9"}\n',
        ":2: not valid UTF-8",
    ),
    ("empty-prompt", "data.jsonl", b'{"id": "a", "prompt": "  "}\n', ":1: field 'prompt' is empty"),
    ("empty-id", "data.jsonl", b'{"id": "", "prompt": "Hi."}\n', ":1: field 'id' is missing or empty"),
    ("empty-tsv-field", "data.tsv", TSV_HEADER + b"x\tDefine it.\t \tDefine\n", ":2: empty 'Response' field"),
    (
        "span-not-in-prompt",
        "data.jsonl",
        b'{"id": "a", "prompt": "Hi."}\n{"id": "b", "prompt": "Define the word river.", "instruction": ["ocean"]}\n',
        ":2: example 'b': span 'ocean' not found in the prompt",
    ),
    (
        "span-range-outside",
        "data.jsonl",
        b'{"id": "b", "prompt": "Define it.", "instruction": [[0, 99]]}\n',
        ":1: example 'b': span [0, 99] is not a [start, end) range inside the prompt of 10 characters",
    ),
    ("duplicate-id", "data.jsonl", b'{"id": "a", "prompt": "Hi."}\n{"id": "a", "prompt": "Yo."}\n', ":2: duplicate id"),
]


@pytest.mark.parametrize(("name", "content", "message"), [c[1:] for c in DATA_ERRORS], ids=[c[0] for c in DATA_ERRORS])
def test_bad_data_file_is_named_with_its_line_and_the_run_kept(finished, tmp_path, capsys, name, content, message):
    _, model, run = finished
    before, manifest = unit_files(run), (run / "manifest.json").read_bytes()
    data = tmp_path / name
    data.write_bytes(content)
    assert attribute(model, data, run) == 2  # into the finished run: refused before touching it
    assert f"{data}{message}" in error_line(capsys)
    assert unit_files(run) == before and (run / "manifest.json").read_bytes() == manifest


def test_prompt_beyond_the_context_fails_alone_and_the_others_are_stored(finished, tmp_path, capsys):
    _, model, _ = finished
    long = {"id": "long", "prompt": " ".join(TOKENIZER_TEXT[:4]), "response": "Yes."}
    data = write_jsonl(tmp_path / "data.jsonl", [GOOD[0], long, GOOD[1]])
    out = tmp_path / "run"
    assert attribute(model, data, out) == 2
    line = error_line(capsys)
    assert "1 of 3 examples failed, the others are stored in" in line
    assert re.search(
        r"long: example 'long': prompt \+ response is \d+ tokens, longer than the model's context of 32", line
    )
    assert sorted(stored_units(out)) == ["./a", "./c"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["failed"]) == ["long"] and manifest["counts"]["stored"] == 2
    with (out / "summary.csv").open() as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    assert rows["long"]["status"] == "failed" and "context of 32" in rows["long"]["error"]
    assert rows["a"]["status"] == rows["c"]["status"] == "ok"


def test_missing_chat_template_falls_back_and_is_recorded(finished):
    _, _, run = finished  # the tiny tokenizer has no chat template; the policy is the default "auto"
    manifest = json.loads((run / "manifest.json").read_text())
    tokenizer = tiny_tokenizer()
    assert manifest["params"]["chat_template"] == "auto"
    assert manifest["chat_format"]["template"] is None
    leading = tokenizer("a")["input_ids"][:-1]  # the special tokens it puts before text (none for this one)
    assert manifest["chat_format"]["prefix_ids"] == leading and manifest["chat_format"]["suffix_ids"] == []


# ---------------------------------------------------------------- vocabularies


def stripping_model(directory):
    """A model whose tokenizer strips accents (as BERT-style normalizers do): a lone accent is no token."""
    from tokenizers import normalizers

    save_model(directory)
    tokenizer = tiny_tokenizer()
    tokenizer.backend_tokenizer.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents()])
    tokenizer.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("command", ["heads", "ffn"])
def test_words_that_tokenise_to_nothing_are_reported_and_skipped(command, tmp_path, capsys):
    model = stripping_model(tmp_path / "model")
    vocab = write_vocab(tmp_path / "words.tsv", [*WORDS[:10], "\u0301", *WORDS[10:]])
    argv = [command, "--model", str(model), "--vocab", str(vocab), "--out", str(tmp_path / "run")]
    options = ["--cooccurrence", "none", "--top-k", "3"] if command == "heads" else ["--components", "2"]
    assert main(argv + options) == 0
    if command == "heads":
        assert f"{len(WORDS)} words (1 skipped: no token)" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["vocabulary"]["skipped"] == ["\u0301"] and manifest["vocabulary"]["n_words"] == len(WORDS)
    assert json.loads((tmp_path / "run" / "vocabulary.json").read_text()) == WORDS  # one name for heads and ffn
    only_blank = write_vocab(tmp_path / "blank.tsv", ["\u0301", "\u0300"])
    assert main([*argv[:3], "--vocab", str(only_blank), "--out", str(tmp_path / "none"), *options]) == 2
    assert "no word of the list tokenises to a usable token" in error_line(capsys)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"sea\t1\ncaf\xe9\t0.5\n", "words.tsv:2: word list is not valid UTF-8"),
        (b"sea\tmany\n", "words.tsv:1: frequency 'many' is not a number"),
    ],
    ids=["non-utf8", "bad-frequency"],
)
def test_bad_word_list_names_file_and_line(finished, tmp_path, capsys, content, message):
    _, model, _ = finished
    vocab = tmp_path / "words.tsv"
    vocab.write_bytes(content)
    assert main(["ffn", "--model", str(model), "--vocab", str(vocab), "--out", str(tmp_path / "run")]) == 2
    assert message in error_line(capsys)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- models


def literal_score(component: np.ndarray, matrix: torch.Tensor, tokenizer, word: str) -> float:
    """A word's FFN score written out: component · its mean subtoken row / that row's norm."""
    ids = [t for t in tokenizer(" " + word, add_special_tokens=False)["input_ids"] if tokenizer.decode([t]).strip()]
    vector = matrix[ids].double().mean(0).numpy()
    return float(component.astype(np.float64) @ vector / np.linalg.norm(vector))


def test_tied_and_untied_embeddings_both_work_and_read_the_right_matrix(tmp_path):
    tokenizer = tiny_tokenizer()
    tied = tiny_model("llama", seed=2, vocab_size=len(tokenizer), tie_word_embeddings=True)
    untied = tiny_model("llama", seed=2, vocab_size=len(tokenizer))
    untied.load_state_dict(tied.state_dict())
    torch.manual_seed(9)
    untied.lm_head.weight.copy_(torch.randn_like(untied.lm_head.weight))  # a different unembedding
    vocab = write_vocab(tmp_path / "words.tsv")
    runs = {}
    for name, model in (("tied", tied), ("untied", untied)):
        model.save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
        for command, options in (("heads", ["--cooccurrence", "none", "--top-k", "3"]), ("ffn", ["--components", "3"])):
            out = tmp_path / f"{command}-{name}"
            argv = [command, "--model", str(tmp_path / name), "--vocab", str(vocab), "--out", str(out), *options]
            assert main(argv) == 0
            runs[command, name] = out
    heads = {name: stored_units(runs["heads", name]) for name in ("tied", "untied")}
    assert heads["tied"].keys() == heads["untied"].keys()
    for unit, (_, arrays) in heads["tied"].items():  # heads read W_q, W_k and the input embeddings only
        for key, array in arrays.items():
            np.testing.assert_array_equal(heads["untied"][unit][1][key], array)
    for name, matrix in (("tied", tied.model.embed_tokens.weight), ("untied", untied.lm_head.weight)):
        ffn = read_ffn_run(runs["ffn", name])
        layer = ffn.layers[1]
        for component in range(3):
            word = ffn.words[layer.top_indices[component][0]]
            expected = literal_score(layer.components[component], matrix, tokenizer, word)
            assert layer.top_scores[component][0] == pytest.approx(expected, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("command", ["attribute", "heads", "ffn"])
def test_remote_code_model_without_the_flag_is_refused(command, tmp_path, capsys):
    model = save_model(tmp_path / "model")
    config = (model / "config.json").read_text()
    (model / "config.json").write_text(  # as in test_loading.py
        config.replace(
            '"model_type": "llama"',
            '"model_type": "custom_remote", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}',
        )
    )
    inputs = ["--data", str(write_jsonl(tmp_path / "d.jsonl", GOOD))] if command == "attribute" else []
    inputs = inputs or ["--vocab", str(write_vocab(tmp_path / "words.tsv"))]
    assert main([command, "--model", str(model), *inputs, "--out", str(tmp_path / "run")]) == 2
    assert f"{model} needs code from its repository; rerun with --trust-remote-code" in error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_base_and_tuned_tokenizers_that_differ_are_refused(tmp_path, capsys):
    base = save_model(tmp_path / "base")
    data = write_jsonl(tmp_path / "d.jsonl", GOOD)
    argv = ["compare", str(base), "organism-tuned", "--data", str(data), "--vocab", str(organism.vocab_path())]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    line = error_line(capsys)
    assert "vocabularies differ" in line and "--allow-different-tokenizers" in line
    assert not (tmp_path / "out").exists()


class _RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused_by_reproduce(tmp_path, capsys):
    paper, marker = tmp_path / "paper", tmp_path / "pwned"
    (paper / "datasets").mkdir(parents=True)
    (paper / "datasets" / "FinalDataset.tsv").write_text(
        "ID\tPrompt\tResponse\tInstruct&Context\nlima_author_1\tDefine the word river.\tA stream.\tDefine\n"
    )
    (paper / "datasets" / "AnnotatedDataset.tsv").write_text(
        "File\tModel\tPrompt\tReference\tInstruct\tResponse\tRating\n"
        "lima_author_1.pkl\tvicuna_7B\tDefine the word river.\tr\tDefine\tA stream.\t3\n"
    )
    for run in ("ifa_llama_7b", "ifa_vicuna_7b"):
        results = paper / "results" / "attribution_interpret" / run
        results.mkdir(parents=True)
        (results / "lima_author_1.pkl").write_bytes(pickle.dumps({"ID": "lima_author_1", "Explain": _RunsCode(marker)}))
    assert main(["reproduce", str(paper)]) == 2
    line = error_line(capsys)
    assert "ifa_llama_7b/lima_author_1.pkl" in line and re.search(r"(posix|os)\.system", line)
    assert not marker.exists()
