"""The real-speech benchmark's scoring (benchmarks/scoring.py) and its corpus (benchmarks/corpus.py realspeech),
by the rule of ../shared/realspeech-dev/README.md."""

from __future__ import annotations

import json

import pytest

from benchmarks.corpus import build_realspeech
from benchmarks.scoring import edit_distance, score, tokens


def test_punctuation_is_deleted_ascii_and_full_width():
    assert tokens("Hello, World! It's “fine”.", "en") == ["hello", "world", "its", "fine"]
    # Full-width Chinese punctuation is Unicode P* too: ，。！？、「」《》
    assert tokens("广州市，房地产。中介！协会？分析、「好」《书》", "zh") == list("广州市房地产中介协会分析好书")
    assert tokens("Bonjour — le «monde» !", "fr") == ["bonjour", "le", "monde"]


def test_zh_and_ja_tokens_are_characters_without_whitespace():
    assert tokens("广州 市  房地产", "zh") == list("广州市房地产")
    assert tokens("日本 語", "ja") == ["日", "本", "語"]
    # The same text in a word language stays words.
    assert tokens("广州 市", "ko") == ["广州", "市"]


def test_edit_distance_counts_substitutions_deletions_and_insertions():
    assert edit_distance(list("kitten"), list("sitting")) == 3
    assert edit_distance(["a", "b", "c"], ["a", "c", "d"]) == 2
    assert edit_distance(["a", "b"], []) == 2
    assert edit_distance([], ["x"]) == 1


def test_a_chinese_file_is_scored_by_characters():
    scores = score([("zh", "广州市房地产中介协会分析", "广州是房地产，中介协会分析。")])
    # One character substituted of 12; the punctuation and the space in the hypothesis cost nothing.
    assert scores.pooled.errors == 1
    assert scores.pooled.reference_tokens == 12
    assert scores.by_language["zh"].rate == pytest.approx(1 / 12)


def test_pooled_rate_sums_errors_and_lengths_over_files_not_a_mean_of_languages():
    scores = score([
        ("en", "the cat sat down", "the cat sat"),  # 1 of 4 words
        ("zh", "今天天气很好", "今天天汽好"),  # 2 of 6 characters (one substituted, one deleted)
        ("en", "Good morning!", "good morning"),  # 0 of 2 words
        ("zh", "我们", "我们"),  # 0 of 2 characters
    ])
    assert scores.by_language["en"].rate == pytest.approx(1 / 6)
    assert scores.by_language["zh"].rate == pytest.approx(2 / 8)
    assert scores.pooled.rate == pytest.approx(3 / 14)
    assert scores.pooled.rate != pytest.approx((1 / 6 + 2 / 8) / 2)
    assert scores.by_language["en"].files == 2
    assert list(scores.by_language) == ["en", "zh"]


def test_realspeech_corpus_links_the_audio_and_keeps_language_and_reference(tmp_path):
    source, folder = tmp_path / "set", tmp_path / "corpus"
    source.mkdir()
    folder.mkdir()
    (source / "a.wav").write_bytes(b"RIFF")
    (source / "b.flac").write_bytes(b"fLaC")
    header = "file\tlanguage\tduration_s\tspeakers\tsource_repo\tsource_path\tlicense_note\treference\n"
    rows = ['a.wav\tzh\t4.281\t1\towner/repo\tx.wav@1\tApache-2.0; "quoted" note\t广州市，房地产\n',
            'b.flac\ten\t9.5\tunknown\towner/repo\ty.flac@2\tMIT\tHe said "hello", twice\n']
    (source / "manifest.tsv").write_text(header + "".join(rows), encoding="utf-8")

    entries = build_realspeech(source, folder)

    assert [(e["path"], e["language"], e["reference"]) for e in entries] == [
        ("a.wav", "zh", "广州市，房地产"), ("b.flac", "en", 'He said "hello", twice')]
    assert (folder / "a.wav").is_symlink() and (folder / "a.wav").read_bytes() == b"RIFF"
    assert (folder / "b.flac").read_bytes() == b"fLaC"
    json.dumps(entries, ensure_ascii=False)  # what main() writes as manifest.json
    # Built again into the same folder: the links are replaced, not an error.
    assert build_realspeech(source, folder) == entries
