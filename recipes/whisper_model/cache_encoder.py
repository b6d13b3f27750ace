"""Runs the frozen Whisper encoder once over a data set and stores what the trainable part needs.

The encoder's bottom layers are frozen during CTC training, so their output is computed once
here: Whisper log-mel features (``edge_speech.features`` preset ``"whisper"``, the runtime's own
C front end) -> conv stem + the first ``--frozen-layers`` transformer layers -> float16 frames.
Training then runs only the top layers and the CTC head, which is what makes it fit 2 cores.

Each utterance is encoded alone at its true length: Whisper's encoder has no attention mask, so
padding a batch would change every frame. Training sets get one augmented copy per pass
(``--augment-p``: noise, babble, reverb, telephone band, gain, speed), test sets none.

    python -m recipes.whisper_model.cache_encoder --whisper W/whisper-base \
        --manifest W/wb_a/train.jsonl --out W/cache/wb_a --augment-p 0.6

Writes OUT/states.f16 (frames x dim, float16, utterances back to back), OUT/index.jsonl
(path, text, voice, offset, frames) and OUT/info.json (dim, frozen layers), resumable: utterances already in the index are skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edge_speech import audio
from edge_speech.converters.whisper_encoder import load_ctranslate2_encoder
from recipes.default_model import augment  # the default model's waveform augmentation, shared
from recipes.whisper_model.whisper_ctc import MAX_SECONDS, whisper_features


def encode_bottom(encoder, feats: np.ndarray, frozen_layers: int) -> np.ndarray:
    with torch.inference_mode():
        x = torch.from_numpy(feats)[None]
        x = torch.nn.functional.gelu(encoder.conv1(x.transpose(1, 2)))
        x = torch.nn.functional.gelu(encoder.conv2(x)).transpose(1, 2)
        x = x + encoder.positions[: x.shape[1]]
        for layer in encoder.layers[:frozen_layers]:
            x = layer(x)
        return x[0].numpy().astype(np.float16)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--whisper", required=True, help="CTranslate2 Whisper directory (prepare_whisper.py)")
    parser.add_argument("--manifest", required=True, action="append", help="JSONL rows with path and text")
    parser.add_argument("--out", required=True)
    parser.add_argument("--frozen-layers", type=int, default=5)
    parser.add_argument("--augment-p", type=float, default=0.0)
    parser.add_argument("--speed-range", type=float, nargs=2, default=(0.9, 1.15))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    rows = [json.loads(line) for m in args.manifest for line in Path(m).read_text().splitlines() if line.strip()]
    if args.limit:
        rows = rows[: args.limit]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    index_path, states_path = out / "index.jsonl", out / "states.f16"
    done = set()
    offset = 0
    if index_path.exists():
        for line in index_path.read_text().splitlines():
            row = json.loads(line)
            done.add(row["path"])
            offset = max(offset, row["offset"] + row["frames"])
    encoder = load_ctranslate2_encoder(args.whisper)
    dim = encoder.dim
    (out / "info.json").write_text(json.dumps({"dim": dim, "frozen_layers": args.frozen_layers}))
    with open(states_path, "ab") as states, open(index_path, "a") as index:
        states.truncate(offset * dim * 2)
        states.seek(offset * dim * 2)
        start, seconds = time.time(), 0.0
        for i, row in enumerate(rows):
            if row["path"] in done:
                continue
            x, rate = audio.read_wav(row["path"])
            if rate != 16000:
                x = audio.resample(x, rate, 16000)
            augmented = False
            rng = np.random.default_rng((args.seed, i))
            if args.augment_p and rng.random() < args.augment_p:
                if rng.random() < 0.4:
                    x = augment.speed_perturb(x, rng.uniform(*args.speed_range))
                babble = lambda rng=rng: audio.read_wav(rows[rng.integers(len(rows))]["path"])[0]  # noqa: E731
                x = np.clip(augment.augment_waveform(x, rng, babble), -1, 1).astype(np.float32)
                augmented = True
            if len(x) > MAX_SECONDS * 16000:
                continue
            frames = encode_bottom(encoder, whisper_features(x), args.frozen_layers)
            states.write(frames.tobytes())
            index.write(
                json.dumps(
                    {
                        "path": row["path"],
                        "text": row["text"],
                        "voice": row.get("voice", ""),
                        "augmented": augmented,
                        "offset": offset,
                        "frames": len(frames),
                    }
                )
                + "\n"
            )
            offset += len(frames)
            seconds += len(x) / 16000
            if i % 500 == 0:
                states.flush()
                index.flush()
                elapsed = time.time() - start
                print(
                    f"{i}/{len(rows)}  {seconds / 3600:.2f} h of audio in {elapsed:.0f} s "
                    f"({seconds / max(elapsed, 1e-9):.1f}x real time)",
                    flush=True,
                )
    print(f"done: {offset} frames in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
