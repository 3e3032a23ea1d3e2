"""pycorpus: the running Python's standard-library source as a text corpus (multi-MB, present on
every machine), split deterministically into train/val by file, plus a byte-level BPE tokenizer
(Sennrich et al. 2016; GPT-2's byte-level variant) trained on it with HF ``tokenizers``."""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import sysconfig
from pathlib import Path

import torch

from ..errors import DataError
from . import cache_dir

SEP = "\n\n# ----\n\n"


def stdlib_files() -> list[Path]:
    """Sorted ``*.py`` files of the standard library (no site-packages, no tests)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in root.rglob("*.py")
             if "site-packages" not in p.parts and "test" not in p.parts and "tests" not in p.parts
             and "idlelib" not in p.parts]
    if not files:
        raise DataError(f"no Python sources found under {root}; pycorpus needs the standard library's .py files")
    return sorted(files)


def _is_val(path: Path, val_fraction: float) -> bool:
    h = int(hashlib.sha1(path.as_posix().split("/lib/")[-1].encode()).hexdigest()[:8], 16)
    return (h % 10_000) < val_fraction * 10_000


def load_text(split: str = "train", max_chars: int | None = None, val_fraction: float = 0.05) -> str:
    """Concatenated source text of the train or val files (split by a hash of the path)."""
    if split not in ("train", "val"):
        raise DataError(f"split={split!r} is invalid: choose 'train' or 'val'")
    parts, total = [], 0
    for p in stdlib_files():
        if _is_val(p, val_fraction) != (split == "val"):
            continue
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        parts.append(text)
        total += len(text)
        if max_chars is not None and total >= max_chars:
            break
    text = SEP.join(parts)
    return text[:max_chars] if max_chars is not None else text


def train_tokenizer(vocab_size: int = 2048, max_chars: int = 4_000_000):
    """Byte-level BPE on pycorpus train text; cached as JSON by (vocab_size, max_chars)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    path = cache_dir() / f"pycorpus-bpe-{vocab_size}-{max_chars}.json"
    if path.exists():
        try:
            return Tokenizer.from_file(str(path))
        except Exception:          # a corrupt cache file is rebuilt, never trusted
            path.unlink(missing_ok=True)
    if vocab_size < 257:
        raise DataError(f"vocab_size={vocab_size} is too small: byte-level BPE needs at least 257 (256 bytes + EOS)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    text = load_text("train", max_chars=max_chars)
    chunk = 100_000
    tok.train_from_iterator((text[i:i + chunk] for i in range(0, len(text), chunk)), trainer=trainer)
    with _atomic_target(path) as tmp:
        tok.save(str(tmp))
    return tok


def encode_corpus(tokenizer, split: str, max_chars: int | None = None) -> torch.Tensor:
    """Token ids of a split as a 1-D int32 tensor, cached next to the tokenizer."""
    key = hashlib.sha1(tokenizer.to_str().encode()).hexdigest()[:10]
    path = cache_dir() / f"pycorpus-{split}-{key}-{max_chars}.pt"
    if path.exists():
        try:
            return torch.load(path, weights_only=True)
        except Exception:          # a corrupt cache file is rebuilt, never trusted
            path.unlink(missing_ok=True)
    text = load_text(split, max_chars=max_chars)
    chunk = 200_000
    ids: list[int] = []
    for enc in tokenizer.encode_batch([text[i:i + chunk] for i in range(0, len(text), chunk)]):
        ids.extend(enc.ids)
    t = torch.tensor(ids, dtype=torch.int32)
    with _atomic_target(path) as tmp:
        torch.save(t, tmp)
    return t


@contextlib.contextmanager
def _atomic_target(path: Path):
    """A unique temp file beside ``path``, renamed onto it on success (safe for concurrent runs)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _read_utf8(f: Path) -> str:
    """A file's text, refusing invalid UTF-8 (replacing it would train on garbage without a word)."""
    data = f.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"--data file {str(f)!r} is not valid UTF-8 (byte {e.start}: {data[e.start:e.start + 4]!r}); "
                        f"convert it (e.g. iconv -f latin1 -t utf-8) or remove it from the folder") from None


def load_text_path(path: str | Path, max_chars: int | None = None) -> str:
    """Text of a file, or of every ``*.py``/``*.txt``/``*.md`` file under a folder (sorted)."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for ext in ("*.txt", "*.py", "*.md") for p in path.rglob(ext))
    else:
        raise DataError(f"--data {str(path)!r} does not exist; pass a text file or a folder of text files")
    if not files:
        raise DataError(f"--data {str(path)!r} holds no .txt/.py/.md files")
    text = SEP.join(_read_utf8(f) for f in files)
    if len(text) < 1000:
        raise DataError(f"--data {str(path)!r} holds only {len(text)} characters; need at least 1000")
    return text[:max_chars] if max_chars else text
