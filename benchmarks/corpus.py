"""Build benchmark corpora from speech made by espeak-ng (with known reference text) and the real
recordings in ../shared/audio. Writes <dir>/manifest.json: [{"path", "reference" | null, "language"}].

    python benchmarks/corpus.py short DIR [--files N]   many short files in several languages
    python benchmarks/corpus.py long DIR [--minutes M]  one long file (espeak paragraphs + pauses)
    python benchmarks/corpus.py story DIR [--minutes M] one long file of many different sentences, six voices
    python benchmarks/corpus.py mix DIR                 both, plus the shared recordings
    python benchmarks/corpus.py real DIR                real speech: the shared recordings cut at pauses
    python benchmarks/corpus.py repeat DIR --source SRC --times N
                                                        SRC's files listed N times (a long queue, no copies)
    python benchmarks/corpus.py realspeech DIR [--source SRC]
                                                        real recordings with reference transcripts in six
                                                        languages (../shared/realspeech-dev), linked, not copied
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "audio"
REALSPEECH = REPO.parent / "shared" / "realspeech-dev"

SENTENCES: dict[str, list[str]] = {
    "en": [
        "The weather is nice today, so we will walk to the park after lunch.",
        "Please send me the report before the meeting on Thursday morning.",
        "My brother bought a new bicycle and rides it to work every day.",
        "The library opens at nine and closes at six in the evening.",
        "We need more time to finish the project and test every part of it.",
    ],
    "de": [
        "Guten Tag. Das ist ein Test der Spracherkennung auf Deutsch.",
        "Morgen fahren wir mit dem Zug nach Berlin und besuchen unsere Freunde.",
        "Die Kinder spielen im Garten, während die Eltern Kaffee trinken.",
        "Ich habe das Buch gestern gelesen und fand es sehr spannend.",
    ],
    "es": [
        "Buenos días. Hoy vamos a la playa con nuestros amigos.",
        "El tren sale a las ocho de la mañana desde la estación central.",
        "Mi hermana trabaja en un hospital y le gusta mucho su trabajo.",
        "Necesitamos comprar pan, leche y fruta para el desayuno.",
    ],
    "fr": [
        "Bonjour tout le monde. Ceci est un essai de reconnaissance vocale.",
        "Nous partons en vacances au mois de juillet avec toute la famille.",
        "Le musée est fermé le lundi mais ouvert tous les autres jours.",
    ],
    "it": [
        "Buongiorno a tutti. Oggi parliamo della nuova biblioteca della città.",
        "Domani andiamo al mare con i bambini e mangiamo una pizza.",
        "Il treno per Roma parte alle dieci dal binario tre.",
    ],
    "pt": [
        "Bom dia. Hoje vamos visitar o museu no centro da cidade.",
        "O meu irmão gosta de jogar futebol com os amigos no sábado.",
        "Precisamos de comprar arroz, feijão e frutas no mercado.",
    ],
    "nl": [
        "Goedemorgen. Vandaag gaan we met de fiets naar het strand.",
        "Mijn zus werkt in een ziekenhuis en woont in Amsterdam.",
    ],
    "pl": [
        "Dzień dobry. Dzisiaj idziemy do parku z naszymi dziećmi.",
        "Mój brat pracuje w banku i mieszka w Krakowie.",
    ],
    "ru": [
        "Добрый день. Сегодня мы идём в парк с нашими друзьями.",
        "Мой брат работает в больнице и живёт в Москве.",
    ],
    "sv": [
        "God morgon. Idag ska vi åka till stranden med barnen.",
        "Min syster arbetar på ett sjukhus i Stockholm.",
    ],
}


def speak(text: str, voice: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "155", "-w", str(raw), text], check=True)
        # 44.1 kHz stereo, as a phone or recorder would give: the pipelines must resample and mix.
        subprocess.run(["sox", str(raw), "-r", "44100", "-c", "2", str(out)], check=True)


def build_short(folder: Path, files: int) -> list[dict]:
    pairs = [(lang, text) for lang, texts in SENTENCES.items() for text in texts]
    entries = []
    for i in range(files):
        lang, text = pairs[i % len(pairs)]
        # Repeat the set with two sentences joined, so later files are longer and differ.
        if i >= len(pairs):
            text = text + " " + pairs[(i + 7) % len(pairs)][1] if pairs[(i + 7) % len(pairs)][0] == lang else text
        path = folder / f"short-{i:03d}-{lang}.wav"
        speak(text, lang, path)
        entries.append({"path": path.name, "reference": text, "language": lang})
    return entries


def build_long(folder: Path, minutes: float) -> list[dict]:
    texts = SENTENCES["en"]
    rate = 16000
    pieces, reference, total = [], [], 0.0
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        cache = []
        for j, text in enumerate(texts):
            p = Path(tmp) / f"{j}.wav"
            subprocess.run(["espeak-ng", "-v", "en", "-s", "155", "-w", str(p), text], check=True)
            q = Path(tmp) / f"{j}-16k.wav"
            subprocess.run(["sox", str(p), "-r", str(rate), "-c", "1", str(q)], check=True)
            cache.append(soundfile.read(str(q), dtype="float32")[0])
        i = 0
        while total < minutes * 60:
            audio = cache[i % len(cache)]
            pause = np.zeros(int(rate * rng.uniform(0.3, 2.5)), dtype=np.float32)
            pieces += [audio, pause]
            reference.append(texts[i % len(texts)])
            total += (len(audio) + len(pause)) / rate
            i += 1
    path = folder / "long-en.flac"
    soundfile.write(str(path), np.concatenate(pieces), rate)
    return [{"path": path.name, "reference": " ".join(reference), "language": "en"}]

# A long file's text that does not repeat every five sentences (as "long" does, where one sentence
# misheard is one error made a dozen times). No digits: "nine" against "9" is formatting, not hearing.
STORY = [
    "The old lighthouse stood on the rocks at the edge of the bay.",
    "Every evening the keeper climbed the narrow stairs to light the lamp.",
    "Fishermen trusted the beam to guide them home through the fog.",
    "One winter a storm broke the glass at the top of the tower.",
    "The keeper wrapped the lamp in canvas and kept it burning all night.",
    "In the morning the harbour was calm and the boats came back safely.",
    "The town council voted to repair the lighthouse before the spring.",
    "A young engineer arrived from the city with plans for a new lantern.",
    "She measured the walls and found that the stone was still strong.",
    "Workers carried heavy beams up the hill on a cold and windy day.",
    "Children watched from the beach as the crane lifted the new glass.",
    "The keeper told stories about ships that had sunk near the reef.",
    "His grandfather had rescued a crew of sailors during a hurricane.",
    "The engineer wrote down every story in a small leather notebook.",
    "Later she published a book about the history of the coast.",
    "Tourists began to visit the village to see the famous tower.",
    "A small cafe opened near the harbour and served fresh bread and soup.",
    "The baker woke before sunrise to prepare loaves for the visitors.",
    "On market days the square was full of farmers selling vegetables.",
    "Apples, cheese and honey were the most popular things on sale.",
    "The school organised a trip to the museum in the nearby city.",
    "Students learned how sailors used the stars to find their way.",
    "The teacher explained how a compass points towards the north.",
    "After lunch they walked through the gardens behind the museum.",
    "A gardener showed them rare flowers that grow only near the sea.",
    "The bus returned to the village just before the rain started.",
    "Parents waited at the school gate with umbrellas and warm coats.",
    "That night the wind was so strong that the windows rattled.",
    "The electricity failed and the whole village went dark.",
    "Only the lighthouse kept shining because it had its own generator.",
    "Neighbours gathered in the church hall and shared candles and tea.",
    "An elderly woman played the piano while everyone sang old songs.",
    "By midnight the storm had moved away towards the open ocean.",
    "Engineers from the power company repaired the lines the next day.",
    "The mayor thanked the volunteers who had helped during the night.",
    "A journalist wrote an article about the kindness of the villagers.",
    "The article was read by thousands of people across the country.",
    "Soon letters arrived from families who wanted to move to the coast.",
    "The village built new houses on the hill above the harbour.",
    "A library was opened in the old post office building.",
    "The librarian collected books donated by people from far away.",
    "On rainy afternoons the reading room was always crowded.",
    "Fishermen repaired their nets on the pier while gulls circled above.",
    "A painter set up her easel to capture the colours of the sunset.",
    "Her paintings were later shown in a gallery in the capital.",
    "Visitors said that the pictures made them feel the cold sea air.",
    "The keeper finally retired after many years of faithful service.",
    "His daughter took over the work and learned to maintain the lamp.",
    "She installed solar panels so that the tower would need less fuel.",
    "Scientists came to study the birds that nested on the cliffs.",
    "They counted puffins, gannets and a rare kind of black petrel.",
    "A documentary about the birds was filmed during the summer.",
    "The film crew stayed at the small hotel beside the station.",
    "Every morning the cook prepared eggs, toast and strong coffee.",
    "The director said that the light on the coast was perfect for filming.",
    "When the film was released, even more visitors came to the village.",
    "The council decided to protect the cliffs as a nature reserve.",
    "Rangers built wooden paths so that people would not disturb the nests.",
    "Today the lighthouse is still working and guides ships at night.",
    "People say that its light is a symbol of hope for the whole coast.",
]
STORY_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan")


def build_story(folder: Path, minutes: float) -> list[dict]:
    """One long file: STORY read in order (then again), each sentence by one of six voices at its own
    speed, with pauses of 0.3-2.5 s and a faint noise floor (a recording's pauses are not digital zero)."""
    rate = 16000
    rng = np.random.default_rng(1)
    pieces, reference, total, i = [], [], 0.0, 0
    with tempfile.TemporaryDirectory() as tmp:
        while total < minutes * 60:
            text = STORY[i % len(STORY)]
            voice = STORY_VOICES[i % len(STORY_VOICES)]
            raw, audio = Path(tmp) / "raw.wav", Path(tmp) / "16k.wav"
            speed = str(int(rng.integers(140, 176)))
            subprocess.run(["espeak-ng", "-v", voice, "-s", speed, "-w", str(raw), text], check=True)
            subprocess.run(["sox", "-V1", "-v", "0.8", str(raw), "-r", str(rate), "-c", "1", str(audio)], check=True)
            speech = soundfile.read(str(audio), dtype="float32")[0]
            pause = np.zeros(int(rate * rng.uniform(0.3, 2.5)), dtype=np.float32)
            pieces += [speech, pause]
            reference.append(text)
            total += (len(speech) + len(pause)) / rate
            i += 1
    signal = np.concatenate(pieces)
    signal += rng.normal(0.0, 0.003, len(signal)).astype(np.float32)
    path = folder / "story-en.flac"
    soundfile.write(str(path), np.clip(signal, -1.0, 1.0), rate)
    return [{"path": path.name, "reference": " ".join(reference), "language": "en"}]


def shared_recordings(folder: Path) -> list[dict]:
    entries = []
    for name in ("apollo11.mp3", "multilingual.mp3", "hotwords.mp3", "two_speakers_stereo.wav"):
        if (SHARED / name).exists():
            shutil.copy(SHARED / name, folder / name)
            entries.append({"path": name, "reference": None, "language": None})
    return entries


REAL_RECORDINGS = ("apollo11.mp3", "multilingual.mp3", "two_speakers_stereo.wav", "hotwords.mp3")
REAL_TEMPOS = (1.0, 0.92, 1.08)  # each piece three times, slower and faster: new files of the same real speech
REAL_FORMATS = (".mp3", ".ogg", ".m4a", ".mp3")


def quiet_cuts(audio: np.ndarray, rate: int, shortest_s: float, longest_s: float) -> list[tuple[int, int]]:
    """Pieces of shortest_s..longest_s, each cut at the quietest 50 ms frame in that range.

    Close to desktop.engine.prepare.window_bounds, but with a hard 4-14 s range and 50 ms frames: the
    tables in benchmarks/results/ were measured on exactly these pieces, so they stay reproducible."""
    frame = rate // 20
    energy = np.sqrt(np.mean(audio[: len(audio) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    pieces, start = [], 0
    while len(audio) - start > longest_s * rate:
        lo, hi = (start + int(shortest_s * rate)) // frame, (start + int(longest_s * rate)) // frame
        cut = (lo + int(np.argmin(energy[lo:hi]))) * frame + frame // 2
        pieces.append((start, cut))
        start = cut
    if len(audio) - start >= rate:
        pieces.append((start, len(audio)))
    return pieces


def build_real(folder: Path) -> list[dict]:
    """Real recorded speech as a queue of short files: the shared recordings cut at pauses into 4-14 s pieces,
    each piece at three tempos (ffmpeg's atempo keeps the pitch) as MP3, Ogg Vorbis or AAC, 44.1 kHz stereo.
    No reference text: compare.py scores these against plain faster-whisper's output instead."""
    sys.path.insert(0, str(REPO))
    from desktop.engine.audio import SAMPLE_RATE, decode

    entries = []
    for name in REAL_RECORDINGS:
        if not (SHARED / name).exists():
            continue
        audio = decode(SHARED / name)
        for n, (start, end) in enumerate(quiet_cuts(audio, SAMPLE_RATE, 4.0, 14.0)):
            for t, tempo in enumerate(REAL_TEMPOS):
                suffix = REAL_FORMATS[(n + t) % len(REAL_FORMATS)]
                path = folder / f"real-{Path(name).stem}-{n:02d}-t{t}{suffix}"
                subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "f32le", "-ar", str(SAMPLE_RATE), "-ac", "1",
                                "-i", "-", "-af", f"atempo={tempo}", "-ar", "44100", "-ac", "2", str(path)],
                               input=audio[start:end].tobytes(), check=True)
                entries.append({"path": path.name, "reference": None, "language": None})
    return entries


def repeat(source: Path, folder: Path, times: int) -> list[dict]:
    """`source`'s manifest `times` over, its paths relative to `folder` (the queue of 828 files in
    benchmarks/README.md is `real` twelve times)."""
    import os

    entries = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    prefix = Path(os.path.relpath(source.resolve(), folder.resolve()))
    return [dict(entry, path=str(prefix / entry["path"])) for _ in range(times) for entry in entries]


def build_realspeech(source: Path, folder: Path) -> list[dict]:
    """The recordings listed in `source`/manifest.tsv, each with its language and reference transcript.

    The audio is symlinked (relative where it can be), not copied: the set is for internal evaluation only
    (its README), so a corpus folder holds no second copy of it. compare.py scores these by the set's own
    rule (benchmarks/scoring.py)."""
    with (source / "manifest.tsv").open(encoding="utf-8", newline="") as tsv:
        rows = list(csv.DictReader(tsv, delimiter="\t", quoting=csv.QUOTE_NONE))
    entries = []
    for row in rows:
        audio = (source / row["file"]).resolve()
        if not audio.is_file():
            raise SystemExit(f"{audio} is listed in {source / 'manifest.tsv'} but missing")
        link = folder / row["file"]
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(audio, folder.resolve()))
        entries.append({"path": row["file"], "reference": row["reference"], "language": row["language"],
                        "duration_s": float(row["duration_s"]), "speakers": row["speakers"]})
    return entries


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=("short", "long", "story", "mix", "real", "repeat", "realspeech"))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--minutes", type=float, default=12)
    parser.add_argument("--source", type=Path, help="repeat: the corpus whose manifest is repeated; "
                        f"realspeech: the folder with manifest.tsv (default {REALSPEECH})")
    parser.add_argument("--times", type=int, default=12, help="repeat: how many times")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    if args.kind == "repeat":
        if args.source is None:
            parser.error("repeat needs --source")
        entries = repeat(args.source, args.folder, args.times)
    elif args.kind == "realspeech":
        entries = build_realspeech(args.source or REALSPEECH, args.folder)
    elif args.kind == "short":
        entries = build_short(args.folder, args.files)
    elif args.kind == "long":
        entries = build_long(args.folder, args.minutes)
    elif args.kind == "story":
        entries = build_story(args.folder, args.minutes)
    elif args.kind == "real":
        entries = build_real(args.folder)
    else:
        entries = build_short(args.folder, 24) + build_long(args.folder, 10) + shared_recordings(args.folder)
    (args.folder / "manifest.json").write_text(json.dumps(entries, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"{len(entries)} files in {args.folder}")


if __name__ == "__main__":
    main()
