"""Issue 16b: wrong inputs that used to pass silently, slow failures and input tracebacks (docs/robustness.md,
"Issue 16b"). Every case ends in a one-line `ShiftlensError` (CLI: exit 2, one line) or a warning naming
what was ignored; the fail-fast cases also check that no hub call, no model load and no retry happens.
"""

from __future__ import annotations

import json
import socket

import pytest
from conftest import tiny_tokenizer
from test_faults import WORDS, error_line, save_model, write_jsonl

from shiftlens import organism
from shiftlens.analysis.heads import analyze_heads
from shiftlens.analysis.instructions import analyze_records, read_run
from shiftlens.analysis.pairing import UnpairedRuns
from shiftlens.attribution.pipeline import attribute
from shiftlens.attribution.settings import AttributionSettings
from shiftlens.cli.main import main
from shiftlens.compare import CompareSettings, compare
from shiftlens.errors import ShiftlensError, ShiftlensWarning
from shiftlens.examples import DataError, load_examples, read_examples
from shiftlens.ffn.annotators import EndpointSettings, check_annotator
from shiftlens.ffn.endpoint import EndpointError
from shiftlens.heads.pipeline import explain_heads
from shiftlens.heads.settings import HeadsSettings
from shiftlens.models import ModelLoadError, ModelSpec, load_model, load_tokenizer
from shiftlens.models import checks as model_checks
from shiftlens.options import LayerError, check_layers, parse_layers

EXAMPLE = {"id": "a", "prompt": "Give a synonym of happy.", "response": "Glad.", "instruction": ["Give"]}


def refuse(what):
    """A stand-in that fails the test if the code under test reaches ``what``."""

    def refused(*args, **kwargs):
        raise AssertionError(f"{what} was called: the check should have failed first")

    return refused


@pytest.fixture
def no_model_loads(monkeypatch):
    """Any transformers load (config, tokenizer, weights) fails the test."""
    import transformers

    for name in ("AutoConfig", "AutoTokenizer", "AutoModelForCausalLM"):
        monkeypatch.setattr(getattr(transformers, name), "from_pretrained", refuse(f"{name}.from_pretrained"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("model") / "tiny", num_hidden_layers=2)


def one_error_line(capsys) -> str:
    line = error_line(capsys)
    assert "Traceback" not in line
    return line


# --- empty data, misspelled fields, missing responses, ratings that match nothing ---------------------------


@pytest.mark.parametrize(("name", "text"), [("e.jsonl", ""), ("blank.jsonl", "\n  \n"), ("h.tsv", None)])
def test_empty_data_file_is_an_error_before_any_model_loads(tmp_path, capsys, model_dir, no_model_loads, name, text):
    path = tmp_path / name
    path.write_text("ID\tPrompt\tResponse\tInstruct&Context\n" if text is None else text)
    with pytest.raises(DataError, match="no examples"):
        read_examples(path)
    assert main(["attribute", "--model", str(model_dir), "--data", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "no examples" in one_error_line(capsys)
    with pytest.raises(ShiftlensError, match="no examples given"):
        load_examples([], None, None)


@pytest.mark.parametrize(
    ("field", "hint"),
    [("instrution", "did you mean 'instruction'?"), ("instruction_span", "'instruction_spans'"), ("spans", "")],
)
def test_misspelled_span_field_names_the_field_the_line_and_the_accepted_names(tmp_path, field, hint):
    row = {"id": "a", "prompt": "Give a synonym of happy.", field: ["Give"]}
    path = write_jsonl(tmp_path / "d.jsonl", [EXAMPLE, row])
    with pytest.raises(DataError, match=rf"d.jsonl:2: unknown field '{field}'; .*{hint}.*accepted fields: id, prompt"):
        read_examples(path)


def test_other_fields_pass_and_data_without_any_instruction_span_is_warned(tmp_path):
    extra = {"id": "b", "idx": 7, "source": "x", "prompt": "Say hi.", "instruction": ["Say"]}
    assert [e.id for e in read_examples(write_jsonl(tmp_path / "ok.jsonl", [EXAMPLE, extra]))] == ["a", "b"]
    with pytest.warns(ShiftlensWarning, match="no example has an instruction span, so every instruction score is 0"):
        read_examples(write_jsonl(tmp_path / "none.jsonl", [{"id": "a", "prompt": "Say hi."}]))


def test_responses_data_on_data_without_responses_is_refused_naming_the_ids(tmp_path, no_model_loads):
    rows = [EXAMPLE, {"id": "b", "prompt": "Say hi."}, {"id": "c", "prompt": "Say bye."}]
    data, vocab = write_jsonl(tmp_path / "d.jsonl", rows), organism.vocab_path()
    with pytest.raises(DataError, match=r"responses=data .* 2 of 3 examples have none \('b', 'c'\)"):
        compare("organism-base", "organism-tuned", data, vocab, tmp_path / "out", CompareSettings(responses="data"))
    assert not (tmp_path / "out").exists()


RATING_HEADER = "File\tModel\tPrompt\tReference\tInstruct\tResponse\tRating\n"


def test_ratings_that_match_no_id_are_an_error_and_a_partial_match_a_warning(tmp_path, capsys, model_dir):
    data = write_jsonl(tmp_path / "d.jsonl", [EXAMPLE, {**EXAMPLE, "id": "b"}])
    none = tmp_path / "none.tsv"
    none.write_text(RATING_HEADER + "x.pkl\tm\tp\tr\ti\tresp\t2\n")
    with pytest.raises(DataError, match=r"match none of the example ids \(0 of 2 rated; .*'x'.*'a', 'b'"):
        load_examples(data, none, None)
    with pytest.warns(ShiftlensWarning, match="rate 1 of the 2 examples; the other 1 have no rating"):
        assert [e.rating for e in load_examples(data, {"a": 2.0}, None)] == [2.0, None]
    argv = ["attribute", "--model", str(model_dir), "--data", str(data), "--ratings", str(none)]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    assert "0 of 2 rated" in one_error_line(capsys)


# --- models: built-in names, the hub, damaged files, non-causal models -------------------------------------


def test_misspelled_builtin_name_says_did_you_mean_without_any_hub_call(monkeypatch, no_model_loads, tmp_path, capsys):
    monkeypatch.setattr(model_checks, "hub_reachable", refuse("the hub probe"))
    for call in (lambda: ModelSpec("organism-tund").check(), lambda: load_model("organism-tund")):
        with pytest.raises(ModelLoadError, match="unknown model 'organism-tund'; did you mean organism-tuned?"):
            call()
    data = write_jsonl(tmp_path / "d.jsonl", [EXAMPLE])
    assert main(["attribute", "--model", "organism-tund", "--data", str(data), "--out", str(tmp_path / "o")]) == 2
    assert "did you mean organism-tuned?" in one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_unreachable_hub_is_one_error_without_retries(monkeypatch, no_model_loads):
    import huggingface_hub

    monkeypatch.setattr(model_checks, "hub_reachable", lambda endpoint: False)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *args, **kwargs: None)
    for call in (lambda: ModelSpec("some-org/some-model").check(), lambda: load_tokenizer("some-org/some-model")):
        with pytest.raises(ModelLoadError, match=r"cannot reach the hub .* \(no network\?\) to fetch some-org/some"):
            call()
    with pytest.raises(ModelLoadError, match="'./missing': no such file or directory"):
        ModelSpec("./missing").check()


def test_the_hub_is_probed_once_per_process(monkeypatch):
    attempts = []

    def no_network(address, timeout):
        attempts.append((address, timeout))
        raise OSError("Name or service not known")

    for variable in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):  # probe the host itself
        monkeypatch.delenv(variable, raising=False)
    model_checks.hub_reachable.cache_clear()
    monkeypatch.setattr(socket, "create_connection", no_network)
    try:
        assert not model_checks.hub_reachable("https://hub.example")
        assert not model_checks.hub_reachable("https://hub.example")
    finally:
        model_checks.hub_reachable.cache_clear()
    assert attempts == [(("hub.example", 443), model_checks.PROBE_TIMEOUT)]


def test_bert_directory_is_refused_naming_its_architecture(tmp_path, capsys):
    import transformers

    config = transformers.BertConfig(vocab_size=64, num_hidden_layers=1, hidden_size=16, num_attention_heads=2)
    transformers.BertForMaskedLM(config).save_pretrained(tmp_path / "bert")
    tiny_tokenizer().save_pretrained(tmp_path / "bert")
    with pytest.raises(ModelLoadError, match=r"is a BertForMaskedLM \(model type bert: an encoder\); .*causal"):
        ModelSpec(str(tmp_path / "bert")).check()
    data = write_jsonl(tmp_path / "d.jsonl", [EXAMPLE])
    assert (
        main(["attribute", "--model", str(tmp_path / "bert"), "--data", str(data), "--out", str(tmp_path / "o")]) == 2
    )
    assert "BertForMaskedLM" in one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_truncated_safetensors_and_fake_gguf_are_one_line_errors(tmp_path, capsys, model_dir):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    fake = tmp_path / "model.gguf"
    fake.write_text("not a gguf")
    data = write_jsonl(tmp_path / "d.jsonl", [EXAMPLE])
    for model, message in ((broken, "model.safetensors is damaged or truncated"), (fake, "is not a GGUF file")):
        with pytest.raises(ModelLoadError, match=message):
            ModelSpec(str(model)).check()
        assert main(["attribute", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "o")]) == 2
        assert message in one_error_line(capsys)
        assert not (tmp_path / "o").exists()
    with pytest.raises(ModelLoadError, match="no GGUF file 'x.gguf' in"):
        ModelSpec(str(tmp_path), gguf_file="x.gguf").check()


# --- options and the annotator's endpoint -------------------------------------------------------------------


def test_bad_layer_specs_are_one_line_errors(tmp_path, capsys, model_dir):
    for text, message in (("3-1", "the range '3-1' runs backwards; write 1-3"), ("1-", "takes indices and ranges")):
        with pytest.raises(ShiftlensError, match=message):
            parse_layers(text)
    with pytest.raises(LayerError, match="no layers given"):
        check_layers([], 4)
    vocab = tmp_path / "words.tsv"
    vocab.write_text("".join(f"{w}\t1\n" for w in WORDS))
    argv = ["heads", "--model", str(model_dir), "--vocab", str(vocab), "--cooccurrence", "none"]
    assert main([*argv, "--layers", "3-1", "--out", str(tmp_path / "o")]) == 2
    assert "runs backwards" in one_error_line(capsys)


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_endpoint_that_is_not_a_url_or_refuses_fails_at_once_without_retries(monkeypatch, tmp_path, capsys, model_dir):
    from shiftlens.ffn import endpoint
    from shiftlens.ffn.pipeline import explain_ffn

    vocab = tmp_path / "words.tsv"
    vocab.write_text("".join(f"{w}\t1\n" for w in WORDS))
    ffn = explain_ffn(str(model_dir), vocab, tmp_path / "ffn")

    monkeypatch.setattr(endpoint.time, "sleep", refuse("a retry's sleep"))
    monkeypatch.setattr(endpoint.ChatEndpoint, "complete", refuse("a chat request"))
    with pytest.raises(EndpointError, match="endpoint 'not-a-url' is not an http:// or https:// URL"):
        check_annotator("llm", EndpointSettings(endpoint="not-a-url", model="m"))
    dead = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(EndpointError, match=r"cannot reach the endpoint .*Connection refused.*is the server running"):
        check_annotator("llm", EndpointSettings(endpoint=dead, model="m"))
    for url, message in (("not-a-url", "is not an http://"), (dead, "Connection refused")):
        assert main(["annotate", str(ffn), "--annotator", "llm", "--endpoint", url, "--model", "m"]) == 2
        assert message in one_error_line(capsys)
    assert not (ffn / "annotations").exists()  # refused before the annotation directory exists


def test_endpoint_settings_with_the_lexical_annotator_are_warned_as_ignored(recwarn):
    with pytest.warns(ShiftlensWarning, match="lexical annotator ignores the endpoint settings endpoint, model"):
        check_annotator("lexical", EndpointSettings(endpoint="http://x/v1", model="m"))
    check_annotator("lexical", EndpointSettings())
    assert not [w for w in recwarn if issubclass(w.category, ShiftlensWarning)]


# --- runs that cannot be paired -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def heads_runs(tmp_path_factory):
    """Heads runs (2 layers, no co-occurrence filter) of two models, and of variants that cannot be paired."""
    root = tmp_path_factory.mktemp("heads")
    vocab, fewer = root / "words.tsv", root / "fewer.tsv"
    vocab.write_text("".join(f"{w}\t1\n" for w in WORDS))
    fewer.write_text("".join(f"{w}\t1\n" for w in WORDS[:-3]))
    settings = HeadsSettings(cooccurrence="none", top_k=5)
    models = {
        "base": save_model(root / "m-base", seed=1, num_hidden_layers=2),
        "tuned": save_model(root / "m-tuned", seed=2, num_hidden_layers=2),
        "narrow": save_model(root / "m-narrow", seed=3, num_hidden_layers=2, num_attention_heads=2),
    }
    runs = {role: explain_heads(str(models[role]), vocab, root / role, settings) for role in ("base", "tuned")}
    runs["fewer"] = explain_heads(str(models["tuned"]), fewer, root / "fewer", settings)
    runs["narrow"] = explain_heads(str(models["narrow"]), vocab, root / "narrow", settings)
    runs["top3"] = explain_heads(
        str(models["tuned"]), vocab, root / "top3", HeadsSettings(cooccurrence="none", top_k=3)
    )
    one = HeadsSettings(cooccurrence="none", top_k=5, layers=(0,))
    runs["layer0"] = explain_heads(str(models["tuned"]), vocab, root / "layer0", one)
    return runs


@pytest.mark.parametrize(
    ("other", "message", "said"),
    [
        ("fewer", r"read different word lists \(\d+ vs \d+ words, 3 only in the base run, 0 only in the tuned", "word"),
        ("narrow", "different architectures: layer 0 has 4 heads in the base run and 2 in the tuned one", "4 heads"),
        ("top3", r"other settings \(top_k: 5 → 3\)", "top_k: 5 → 3"),
    ],
)
def test_heads_runs_that_cannot_be_paired_are_refused_naming_the_mismatch(heads_runs, other, message, said, capsys):
    with pytest.raises(UnpairedRuns, match=message):
        analyze_heads(heads_runs["base"], heads_runs[other])
    assert main(["analyze", "heads", str(heads_runs["base"]), str(heads_runs[other])]) == 2
    assert said in one_error_line(capsys)


def test_heads_runs_of_other_layers_are_compared_on_the_shared_ones_with_a_warning(heads_runs):
    assert analyze_heads(heads_runs["base"], heads_runs["tuned"])["groups"]
    with pytest.warns(ShiftlensWarning, match=r"only the 1 shared layers are compared"):
        result = analyze_heads(heads_runs["base"], heads_runs["layer0"])
    assert [row["layer"] for row in result["head_overlap_by_layer"]] == [0]


def test_ffn_runs_of_other_word_lists_are_refused(tmp_path):
    from shiftlens.analysis.ffn import analyze_ffn
    from shiftlens.ffn.pipeline import explain_ffn

    model = save_model(tmp_path / "m", num_hidden_layers=2)
    vocab, fewer = tmp_path / "words.tsv", tmp_path / "fewer.tsv"
    vocab.write_text("".join(f"{w}\t1\n" for w in WORDS))
    fewer.write_text("".join(f"{w}\t1\n" for w in WORDS[:-2]))
    base, tuned = explain_ffn(str(model), vocab, tmp_path / "base"), explain_ffn(str(model), fewer, tmp_path / "tuned")
    with pytest.raises(UnpairedRuns, match="FFN runs read different word lists"):
        analyze_ffn(base, tuned)


def test_responses_from_a_run_of_another_tokenizer_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    model = save_model(tmp_path / "tiny", num_hidden_layers=2)
    data = write_jsonl(tmp_path / "d.jsonl", [EXAMPLE])
    run = attribute(str(model), data, tmp_path / "run")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["model"]["tokenizer_sha256"]
    monkeypatch.setattr("shiftlens.models.load.load_model", refuse("load_model"))
    with pytest.raises(ShiftlensError, match=r"responses_from .* was made with another tokenizer .*organism-base"):
        attribute("organism-base", data, tmp_path / "other", AttributionSettings(responses_from=str(run)))
    assert not (tmp_path / "other").exists()


def test_ratings_in_an_analysis_that_match_no_id_are_an_error(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [EXAMPLE])
    run = attribute(str(save_model(tmp_path / "m", num_hidden_layers=2)), data, tmp_path / "run")
    _, records = read_run(run)
    with pytest.raises(DataError, match=r"match none of the example ids \(0 of 1 rated"):
        analyze_records(records, records, {"zzz": 2.0})
