"""CLIP's byte-level BPE tokenizer (Sennrich et al. 2016, "Neural Machine Translation of Rare Words with Subword
Units", as CLIP uses it: Radford et al. 2021, lower-cased text, a ``</w>`` suffix on each word's last symbol),
read from a Hugging Face tokenizer folder such as a Stable Diffusion pipeline's ``tokenizer/``.

The pipeline is ours, the merge loop is the ``tokenizers`` library's (a runtime dependency): the text is NFC
normalised, whitespace runs become one space and it is lower-cased; CLIP's regex splits it into words, numbers
(one digit each) and punctuation runs; each piece is mapped byte by byte to printable characters (GPT-2's
bytes-to-unicode table, the ``ByteLevel`` step) and merged by rank with merges.txt; then
``<|startoftext|> ... <|endoftext|>``, truncated and padded (with the folder's pad token) to ``model_max_length``.

    tok = CLIPTokenizer.from_folder("sd/text_encoder")      # reads it or its sibling ../tokenizer/
    ids = tok(["a photo of a cat"])                          # (1, model_max_length)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import require
from ..errors import CheckpointError, DataError

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
"""CLIP's pre-tokenisation regex (openai/CLIP simple_tokenizer.py): contractions, letter runs, single digits,
punctuation runs"""
END_OF_WORD = "</w>"
SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token")


@dataclass(frozen=True, kw_only=True)
class CLIPTokenizerConfig:
    """Special tokens and length of a CLIP tokenizer (tokenizer_config.json / special_tokens_map.json)."""
    model_max_length: int = 77
    """every prompt is truncated and padded to this many ids (diffusers' padding="max_length")"""
    bos_token: str = BOS
    """start-of-text token"""
    eos_token: str = EOS
    """end-of-text token (the text tower pools there)"""
    pad_token: str = EOS
    """padding token (SD 1.x: <|endoftext|>, SD 2.x: "!")"""
    unk_token: str = EOS
    """what a symbol outside the vocabulary becomes"""

    def __post_init__(self) -> None:
        require(self.model_max_length >= 2, "tokenizer.model_max_length", self.model_max_length,
                "must be >= 2 (<|startoftext|> + <|endoftext|>)")


class CLIPTokenizer:
    """Prompts -> (B, model_max_length) ids, as transformers' CLIPTokenizer(padding="max_length", truncation=True)."""

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], cfg: CLIPTokenizerConfig,
                 where: str = "the tokenizer"):
        self.cfg, self.vocab_size = cfg, len(vocab)
        missing = [getattr(cfg, k) for k in SPECIAL_KEYS if getattr(cfg, k) not in vocab]
        if missing:
            raise CheckpointError(f"{where}: special token {missing[0]!r} is not in vocab.json; the tokenizer files "
                                  f"do not belong together")
        self.ids = {k: vocab[getattr(cfg, k)] for k in SPECIAL_KEYS}
        self.vocab, self.merges = dict(vocab), list(merges)
        self._tok = _backend(vocab, merges, cfg, self.ids)

    def files(self) -> dict[str, bytes]:
        """vocab.json, merges.txt and tokenizer_config.json as a Hugging Face CLIP tokenizer folder holds them
        (``from_folder`` reads them back to the same ids)."""
        config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": self.cfg.model_max_length,
                  **{k: getattr(self.cfg, k) for k in SPECIAL_KEYS}}
        merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self.merges)
        return {"vocab.json": json.dumps(self.vocab, ensure_ascii=False).encode(),
                "merges.txt": merges.encode(), "tokenizer_config.json": json.dumps(config, indent=2).encode()}

    @classmethod
    def from_folder(cls, path: str | Path, max_length: int | None = None) -> CLIPTokenizer:
        """The tokenizer in ``path`` or its diffusers sibling (``text_encoder[_2]/`` -> ``tokenizer[_2]/``);
        ``max_length`` is used when tokenizer_config.json names no model_max_length."""
        folder = tokenizer_folder(path)
        vocab, merges = read_bpe(folder)
        return cls(vocab, merges, read_config(folder, max_length), where=str(folder))

    def encode(self, text: str) -> list[int]:
        """One prompt -> [bos, BPE ids..., eos], truncated to model_max_length, not padded."""
        e = self._tok.encode(text)
        return [i for i, keep in zip(e.ids, e.attention_mask) if keep]

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> ids (B, model_max_length): bos, BPE ids, eos, then the pad id."""
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise DataError(f"the CLIP tokenizer takes a list of strings, got {prompts!r:.80}")
        return torch.tensor([e.ids for e in self._tok.encode_batch(list(prompts))], dtype=torch.long)  # (B, L)


def _backend(vocab: dict[str, int], merges: list[tuple[str, str]], cfg: CLIPTokenizerConfig, ids: dict[str, int]):
    """The ``tokenizers`` pipeline: normalise, split by CLIP's regex, byte-level map, BPE with ``</w>``, bos/eos."""
    from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE

    tok = Tokenizer(BPE(vocab=vocab, merges=merges, continuing_subword_prefix="", end_of_word_suffix=END_OF_WORD,
                        unk_token=cfg.unk_token, fuse_unk=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    specials = dict.fromkeys(getattr(cfg, k) for k in SPECIAL_KEYS)        # ordered, deduplicated
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cfg.bos_token} $A {cfg.eos_token}",
        special_tokens=[(cfg.bos_token, ids["bos_token"]), (cfg.eos_token, ids["eos_token"])])
    tok.enable_truncation(max_length=cfg.model_max_length)
    tok.enable_padding(length=cfg.model_max_length, pad_id=ids["pad_token"], pad_token=cfg.pad_token)
    return tok


def _has_files(p: Path) -> bool:
    return ((p / "vocab.json").is_file() and (p / "merges.txt").is_file()) or (p / "tokenizer.json").is_file()


def tokenizer_folder(path: str | Path) -> Path:
    """``path`` when it holds vocab.json + merges.txt (or tokenizer.json), else its diffusers sibling tokenizer
    folder (``text_encoder`` -> ``tokenizer``, ``text_encoder_2`` -> ``tokenizer_2``)."""
    p = Path(path)
    sibling = p.parent / (p.name.replace("text_encoder", "tokenizer") if "text_encoder" in p.name else "tokenizer")
    for folder in (p, sibling):
        if _has_files(folder):
            return folder
    half = [f"{q / a} without {b}" for q in (p, sibling) for a, b in (("vocab.json", "merges.txt"),
                                                                    ("merges.txt", "vocab.json"))
            if (q / a).is_file()]
    found = f" (found {half[0]})" if half else ""
    raise DataError(f"no CLIP tokenizer for {p}: expected vocab.json + merges.txt (or tokenizer.json) in it or in "
                    f"{sibling}{found}; copy the model's tokenizer files there")


def _read_json(f: Path) -> Any:
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{f} is not readable JSON ({type(e).__name__}); the tokenizer folder is "
                              f"corrupt") from None


def _merge_pair(m: Any, where: Path) -> tuple[str, str]:
    parts = m.split(" ") if isinstance(m, str) else list(m)
    if len(parts) != 2 or not all(isinstance(s, str) and s for s in parts):
        raise CheckpointError(f"{where}: merge {m!r} is not a pair of symbols")
    return parts[0], parts[1]


def read_bpe(folder: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab, ranked merges) from vocab.json + merges.txt, else from tokenizer.json's BPE model."""
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        vocab = _read_json(folder / "vocab.json")
        lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
        merges = [_merge_pair(m, folder / "merges.txt") for m in lines if m.strip() and not m.startswith("#version")]
    else:
        model = (_read_json(folder / "tokenizer.json") or {}).get("model") or {}
        if model.get("type") != "BPE":
            raise CheckpointError(f"{folder}/tokenizer.json holds a {model.get('type')!r} model; CLIP's is BPE")
        vocab = model.get("vocab")
        merges = [_merge_pair(m, folder / "tokenizer.json") for m in model.get("merges", [])]
    if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
        raise CheckpointError(f"{folder}: the vocabulary is not a {{token: id}} mapping")
    return vocab, merges


def _token(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or {"content": ...}."""
    return value.get("content") if isinstance(value, dict) else value if isinstance(value, str) else None


def read_config(folder: Path, max_length: int | None = None) -> CLIPTokenizerConfig:
    """Special tokens and model_max_length: tokenizer_config.json, overridden by special_tokens_map.json (as
    transformers reads them); ``max_length`` when the folder names no (or a placeholder huge) model_max_length."""
    meta: dict[str, Any] = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (folder / name).is_file():
            meta.update({k: v for k, v in (_read_json(folder / name) or {}).items() if v is not None})
    kw = {k: t for k in SPECIAL_KEYS if (t := _token(meta.get(k))) is not None}
    length = meta.get("model_max_length")
    if not isinstance(length, int) or length > 1_000_000:
        length = max_length if max_length is not None else CLIPTokenizerConfig.model_max_length
    return CLIPTokenizerConfig(model_max_length=length, **kw)
