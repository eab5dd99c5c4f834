"""The one WordNet reader: packaged data, a WordNet 3.0 directory, the wndb parsers and every bad source."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shiftlens.wordnet import (
    ENV,
    PACKAGED,
    WordNet,
    WordNetError,
    clean_word,
    parse_data_line,
    parse_index_line,
    wordnet,
)

REPO = Path(__file__).resolve().parents[1]
ABLE = (
    "00001740 00 a 01 able 0 005 = 05200169 n 0000 = 05616246 n 0000 + 05616246 n 0101 "
    "+ 05200169 n 0101 ! 00002098 a 0101 | (usually followed by `to') having the necessary means; "
    '"able to swim"; "she was able to program her computer"  '
)
HEADER = "  1 This software and database is provided to you\n  14 WordNet {version} Copyright 2006 by Princeton.\n"


def build_script():
    """scripts/build_wordnet_data.py as a module (it derives the packaged files)."""
    spec = importlib.util.spec_from_file_location("build_wordnet_data", REPO / "scripts" / "build_wordnet_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_wordnet(directory: Path, version: str = "3.0") -> Path:
    """A tiny but complete WordNet directory: one synset and one lemma per part of speech."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, letter in (("noun", "n"), ("verb", "v"), ("adj", "a"), ("adv", "r")):
        line = f'00001740 03 {letter} 01 thing_{letter} 0 001 @ 00001930 {letter} 0000 | a {name}; "one thing"\n'
        (directory / f"data.{name}").write_text(HEADER.format(version=version) + line)
        (directory / f"index.{name}").write_text(HEADER + f"thing_{letter} {letter} 1 1 @ 1 1 00001740\n")
        (directory / f"{name}.exc").write_text(f"things_{letter} thing_{letter}\n")
    return directory


def test_packaged_data_holds_wordnet_3():
    source = WordNet()
    assert source.source == PACKAGED and source.directory is None
    entity = source.synset_table[("n", "00001740")]
    assert entity.words == ("entity",) and entity.lex_filenum == 3 and entity.definition.startswith("that which")
    dog = source.index_table["noun"]["dog"]
    assert len(dog.offsets) == 7 and source.synset_table[("n", dog.offsets[0])].words[0] == "dog"
    assert source.exception_table["verb"]["ran"] == "run"
    assert len(source.synset_table) == 117659  # every synset of WordNet 3.0
    assert sum(len(entries) for entries in source.index_table.values()) == 155287
    good = source.synset_table[("a", "01123148")]
    assert good.words[0] == "good" and ("a", "01125429") in {(p, o) for _, p, o, _ in good.antonyms}


def test_data_line_parser_reads_words_gloss_examples_and_antonyms():
    synset = parse_data_line(ABLE, "data.adj:30")
    assert (synset.offset, synset.ss_type, synset.words, synset.lex_filenum) == ("00001740", "a", ("able",), 0)
    assert synset.definition == "(usually followed by `to') having the necessary means"
    assert synset.examples == ("able to swim", "she was able to program her computer")
    assert synset.antonyms == ((1, "a", "00002098", 1),)
    assert clean_word("ill-natured(a)") == "ill-natured" and clean_word("take_a_breath") == "take a breath"
    with pytest.raises(WordNetError, match=r"data\.noun:7: not a WordNet data line"):
        parse_data_line("00001740 03 n zz entity | broken", "data.noun:7")


def test_index_line_parser_checks_the_synset_count():
    lemma, entry = parse_index_line("dog n 2 1 @ 2 1 02084071 10114209", "index.noun:3")
    assert lemma == "dog" and entry.tagged == 1 and entry.offsets == ("02084071", "10114209")
    with pytest.raises(WordNetError, match=r"index\.noun:3: not a WordNet index line \(2 synsets announced"):
        parse_index_line("dog n 2 1 @ 2 1 02084071", "index.noun:3")


def test_a_directory_is_read_in_the_same_format(tmp_path):
    source = WordNet(write_wordnet(tmp_path / "dict"))
    assert source.source == str(tmp_path / "dict")
    assert source.synset_table[("v", "00001740")].words == ("thing_v",)
    assert source.index_table["adv"]["thing_r"].offsets == ("00001740",)
    assert source.exception_table["adj"] == {"things_a": "thing_a"}
    assert list(source.glosses())[0] == 'a noun; "one thing"'


def test_packaged_files_are_the_trimmed_directory_files(tmp_path):
    script = build_script()
    directory = write_wordnet(tmp_path / "dict")
    (directory / "data.noun").write_text(HEADER.format(version="3.0") + ABLE.replace(" a ", " n ", 1) + "\n")
    derived = script.derived_files(WordNet(directory))
    assert derived["data.noun"].split(" | ")[0].endswith("001 ! 00002098 a 0101")  # only the antonym kept
    assert derived["data.noun"].split(" | ")[1] == ABLE.split(" | ")[1].strip() + "\n"
    assert derived["index.noun"] == "thing_n n 1 0 1 1 00001740\n"
    (tmp_path / "packaged").mkdir()
    for name, text in derived.items():  # the trimmed files parse to the same records as the originals
        (tmp_path / "packaged" / name).write_text(HEADER.format(version="3.0") + text)
    trimmed, original = WordNet(tmp_path / "packaged"), WordNet(directory)
    assert trimmed.synset_table == original.synset_table and trimmed.index_table == original.index_table


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "absent", "is not a directory: expected a WordNet 3.0 dict directory"),
        (lambda d: d, "is not WordNet: data.noun, index.noun, .* missing"),
        (lambda d: write_wordnet(d / "wn21", version="2.1"), r"is not WordNet 3.0 \(data.noun says WordNet 2.1\)"),
    ],
    ids=["missing", "empty", "version-2.1"],
)
def test_bad_wordnet_directories_are_refused_by_name(tmp_path, monkeypatch, make, message):
    directory = make(tmp_path)
    monkeypatch.setenv(ENV, str(directory))
    with pytest.raises(WordNetError, match=f"^{ENV} {directory}.*{message}"):
        WordNet()


def test_bad_wordnet_variable_is_one_line_and_exit_2(tmp_path, organism_ffn_run):
    env = {**os.environ, ENV: str(tmp_path / "absent")}
    argv = ["annotate", str(organism_ffn_run), "--annotator", "lexical", "--out", str(tmp_path / "labels")]
    code = f"from shiftlens.cli.main import main; raise SystemExit(main({argv!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert f"{ENV} {tmp_path / 'absent'} is not a directory" in done.stderr


def test_the_variable_selects_a_directory(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, str(write_wordnet(tmp_path / "dict")))
    assert wordnet().source == str(tmp_path / "dict")
    monkeypatch.delenv(ENV)
    assert wordnet().source == PACKAGED


OS_WORDNET_HIDDEN = textwrap.dedent(
    """
    import json, sys
    def refuse(event, args):  # the OS WordNet directory is empty here: any access to it fails
        if event in {"open", "os.listdir", "os.scandir"} and args and str(args[0]).startswith("/usr/share/wordnet"):
            raise FileNotFoundError(args[0])
    sys.addaudithook(refuse)
    from shiftlens.ffn.lexical import LexicalAnnotator
    from shiftlens.heads.cooccurrence import wordnet_corpus
    from shiftlens.organism.corpus import build_lexicon
    from shiftlens.wordnet import WordNet
    sys.path.insert(0, sys.argv[1])
    from build_general_verbs import general_verbs
    label = LexicalAnnotator().label(["apple", "bread", "cheese", "soup", "rice", "milk"])
    print(json.dumps({
        "concept": label.concept,
        "lexicon": [e.word for e in build_lexicon(5)],
        "glosses": sum(1 for _ in open(wordnet_corpus())),
        "verbs": [v for v, _ in general_verbs(WordNet(), 3)],
    }))
    """
)


def test_every_wordnet_user_works_with_the_os_wordnet_hidden(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != ENV} | {"SHIFTLENS_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", OS_WORDNET_HIDDEN, str(REPO / "scripts")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["concept"] == "food (nouns)"
    assert len(result["lexicon"]) == 5 and result["glosses"] == 117659 and len(result["verbs"]) == 3
