"""Chat LM artifacts on disk: GGUF conversion and atomic publishing of model folders.

Split from ``ml.generate`` (which re-exports these names) so each module stays small.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ml.artifacts import ArtifactError, atomic_replace_dir, publish_dir

__all__ = ["CHATML_END", "convert_gguf", "publish_dir", "write_dir_atomically"]

# ChatML markers of SmolLM2; the GGUF metadata names <|im_start|> as eos, which would make
# generate() run past the end of the assistant's turn.
CHATML_END = "<|im_end|>"


def write_dir_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Has ``write`` fill a staging folder beside ``target``, then publishes it.

    ``ml.artifacts.atomic_replace_dir``: a crash while writing leaves only a hidden
    ``.<name>-*`` folder, and ``target`` is never missing; the caller writes the manifest
    after this returns, so until then the folder does not look complete.

    Args:
        target: the artifact directory.
        write: fills the folder it is given.
    """
    atomic_replace_dir(target, write)


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantises a GGUF chat model once into a safetensors (fp32) folder.

    The GGUF load takes ~20 s; the folder loads in ~0.3 s after. The tokenizer keeps the
    ChatML chat template; its special tokens are corrected (eos = pad = ``<|im_end|>``, no
    automatic BOS), matching the original SmolLM2-Instruct tokenizer.

    Args:
        gguf_path: the ``.gguf`` file.
        out_dir: the folder to create; the caller writes its manifest afterwards.
    """
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise ArtifactError(f"GGUF file {gguf_path} is missing")
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)  # nosec B615  # local GGUF file
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)  # nosec B615  # local
    if CHATML_END in tokenizer.get_vocab():
        tokenizer.eos_token = CHATML_END
        tokenizer.pad_token = CHATML_END
        if model.generation_config is not None:
            model.generation_config.eos_token_id = tokenizer.eos_token_id
            model.generation_config.pad_token_id = tokenizer.eos_token_id
    if hasattr(tokenizer, "add_bos_token"):
        tokenizer.add_bos_token = False  # the chat template writes <|im_start|> itself

    def write(staging: Path) -> None:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)

    write_dir_atomically(out_dir, write)
