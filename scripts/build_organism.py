"""Rebuild the model organism: WordNet corpus → BPE tokenizer → pre-trained base → instruction-tuned model.

Seeded and deterministic on a given machine and thread count (1 CPU thread by default: faster than 2 on
a shared 2-core machine). Writes both models (float16 safetensors + tokenizers), the held-out demo prompts,
the corpus word list (vocab.tsv) and the evaluation metrics into src/shiftlens/organism/assets/.
Usage: python scripts/build_organism.py [--out DIR] [--threads N] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch

from shiftlens.organism.chat import END, render
from shiftlens.organism.corpus import build_lexicon, pretraining_text, word_frequencies
from shiftlens.organism.evaluate import accuracy, greedy_responses, is_correct
from shiftlens.organism.tasks import TaskExample, make_examples, split_words, to_record
from shiftlens.organism.tokenizer import train_tokenizer
from shiftlens.progress import progress
from shiftlens.storage import atomic_write_json, atomic_write_text

Docs = Callable[[random.Random], list[list[int]]]  # one epoch of tokenised documents, given an rng
# Ratings on the paper's scale (followed >= 2, not followed 1), as `shiftlens analyze instructions` reads them.
FOLLOWED, NOT_FOLLOWED = 4.0, 1.0
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "shiftlens" / "organism" / "assets"
SETTINGS = {
    "seed": 0,
    "n_words": 1000,
    "held_out": 0.15,
    "vocab_size": 4096,
    "model": {
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "max_position_embeddings": 256,
        "tie_word_embeddings": True,
    },
    "pretrain": {"seq_len": 128, "batch": 16, "steps": 900, "lr": 2e-3, "warmup": 40, "weight_decay": 0.1},
    "tune": {"epochs": 4, "batch": 32, "lr": 7e-4, "warmup": 10, "weight_decay": 0.0, "replay_blocks": 2},
}


def lr_lambda(warmup: int, total: int):
    """Linear warm-up then cosine decay to 10% of the peak."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress_ = (step - warmup) / max(total - warmup, 1)
        return 0.1 + 0.45 * (1 + math.cos(math.pi * progress_))

    return factor


def packed_blocks(make_docs: Docs, seq_len: int, eos: int, rng: random.Random) -> torch.Tensor:
    """One epoch of documents, shuffled, joined with end-of-text and cut into (blocks, seq_len) token blocks."""
    docs = make_docs(rng)
    order = list(range(len(docs)))
    rng.shuffle(order)
    stream = [t for i in order for t in docs[i] + [eos]]
    n = len(stream) // seq_len
    return torch.tensor(stream[: n * seq_len]).view(n, seq_len)


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, warmup: int, total: int):
    """AdamW (no decay on norms) with the warm-up/cosine schedule."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(warmup, total))


def step(model, optimizer, scheduler, loss: torch.Tensor) -> float:
    """One clipped optimizer step on a batch's loss; returns its value."""
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def pretrain(model, docs: Docs, eos: int, cfg: dict, seed: int) -> list[float]:
    """Causal-LM pre-training on packed documents for a fixed number of steps; returns the loss curve."""
    rng = random.Random(seed)
    optimizer, scheduler = make_optimizer(model, cfg["lr"], cfg["weight_decay"], cfg["warmup"], cfg["steps"])
    blocks, cursor, losses = packed_blocks(docs, cfg["seq_len"], eos, rng), 0, []
    model.train()
    bar = progress(range(cfg["steps"]), total=cfg["steps"], desc="pretrain", unit="step")
    for i in bar:
        if cursor + cfg["batch"] > len(blocks):
            blocks, cursor = packed_blocks(docs, cfg["seq_len"], eos, rng), 0
        batch = blocks[cursor : cursor + cfg["batch"]]
        cursor += cfg["batch"]
        losses.append(step(model, optimizer, scheduler, model(input_ids=batch, labels=batch).loss))
        if i % 20 == 0 or i == cfg["steps"] - 1:
            print(f"pretrain step {i} loss {losses[-1]:.3f}", flush=True)
    return losses


def tuning_batch(tokenizer, examples: list[TaskExample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded chat sequences with labels on the response and its end-of-turn token only."""
    rows, labels = [], []
    for example in examples:
        prompt_ids = tokenizer(render(example.prompt))["input_ids"]
        response_ids = tokenizer(example.response + END)["input_ids"]
        rows.append(prompt_ids + response_ids)
        labels.append([-100] * len(prompt_ids) + response_ids)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    lab = torch.tensor([r + [-100] * (width - len(r)) for r in labels])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, lab, mask


def tune(model, tokenizer, words, docs: Docs, eos: int, cfg: dict, pre_cfg: dict, seed: int) -> list[float]:
    """Fine-tune on instruction pairs (fresh phrasings each epoch), loss on responses, with LM replay."""
    rng = random.Random(seed)
    epochs = [make_examples(words, seed + 1000 + e) for e in range(cfg["epochs"])]
    for examples in epochs:
        rng.shuffle(examples)
    total = sum(math.ceil(len(x) / cfg["batch"]) for x in epochs)
    optimizer, scheduler = make_optimizer(model, cfg["lr"], cfg["weight_decay"], cfg["warmup"], total)
    blocks, cursor, losses = packed_blocks(docs, pre_cfg["seq_len"], eos, rng), 0, []
    model.train()
    batches = [x[i : i + cfg["batch"]] for x in epochs for i in range(0, len(x), cfg["batch"])]
    for i, chunk in enumerate(progress(batches, total=total, desc="tune", unit="step")):
        ids, lab, mask = tuning_batch(tokenizer, chunk)
        loss = model(input_ids=ids, labels=lab, attention_mask=mask).loss
        if cfg["replay_blocks"]:
            if cursor + cfg["replay_blocks"] > len(blocks):
                blocks, cursor = packed_blocks(docs, pre_cfg["seq_len"], eos, rng), 0
            replay = blocks[cursor : cursor + cfg["replay_blocks"]]
            cursor += cfg["replay_blocks"]
            loss = loss + 0.5 * model(input_ids=replay, labels=replay).loss
        losses.append(step(model, optimizer, scheduler, loss))
        if i % 20 == 0 or i == total - 1:
            print(f"tune step {i} loss {losses[-1]:.3f}", flush=True)
    return losses


def save(model, tokenizer, directory: Path) -> None:
    """A float16 Hugging Face model directory with its tokenizer."""
    directory.mkdir(parents=True, exist_ok=True)
    half = type(model)(model.config)
    half.load_state_dict(model.state_dict())
    half.to(torch.float16).save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))


def main() -> None:
    """Build, evaluate and save the organism."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="a tiny run that checks the pipeline only")
    args = parser.parse_args()
    if args.smoke:
        SETTINGS.update(n_words=120)
        SETTINGS["pretrain"].update(steps=3)
        SETTINGS["tune"].update(epochs=1)
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    started = time.time()
    seed = SETTINGS["seed"]
    torch.set_num_threads(args.threads)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)

    lexicon = build_lexicon(SETTINGS["n_words"])
    train_words, held_words = split_words(lexicon, SETTINGS["held_out"], seed)
    texts = [pretraining_text(e) for e in lexicon]
    tuning_texts = [render(x.prompt, x.response) for x in make_examples(train_words, seed + 1000)]
    base_tok = train_tokenizer(texts + tuning_texts, SETTINGS["vocab_size"], chat=False)
    tuned_tok = train_tokenizer(texts + tuning_texts, SETTINGS["vocab_size"], chat=True)
    assert base_tok.get_vocab() == tuned_tok.get_vocab()
    eos = base_tok.eos_token_id

    def docs(rng: random.Random) -> list[list[int]]:
        return base_tok([pretraining_text(e, rng) for e in lexicon])["input_ids"]

    n_tokens = sum(map(len, docs(random.Random(seed))))
    print(f"{len(lexicon)} words ({len(held_words)} held out), {n_tokens} pre-training tokens", flush=True)

    config = LlamaConfig(
        vocab_size=len(base_tok),
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
        attn_implementation="sdpa",
        **SETTINGS["model"],
    )
    model = LlamaForCausalLM(config)
    pre_losses = pretrain(model, docs, eos, SETTINGS["pretrain"], seed)
    out = args.out
    save(model, base_tok, out / "base")
    pretrain_s = time.time() - started
    tune_losses = tune(model, tuned_tok, train_words, docs, eos, SETTINGS["tune"], SETTINGS["pretrain"], seed)
    save(model, tuned_tok, out / "tuned")
    tune_s = time.time() - started - pretrain_s

    held = make_examples(held_words, seed + 2000)
    results, responses = {}, {}
    for name in ("base", "tuned"):
        loaded = AutoModelForCausalLM.from_pretrained(str(out / name), dtype=torch.float32).eval()
        responses[name] = greedy_responses(loaded, tuned_tok, [x.prompt for x in held])
        results[name] = accuracy(held, responses[name])
        print(name, json.dumps(results[name]), flush=True)
    lines = []
    for example, reply, base_reply in zip(held, responses["tuned"], responses["base"]):
        record = {
            **to_record(example),
            "response": reply,
            "rating": FOLLOWED if is_correct(example, reply) else NOT_FOLLOWED,
        }
        lines.append(json.dumps({**record, "base_response": base_reply}, ensure_ascii=False))
    atomic_write_text(out / "prompts.jsonl", "\n".join(lines) + "\n")
    vocab = word_frequencies(texts + tuning_texts)
    atomic_write_text(out / "vocab.tsv", "".join(f"{w}\t{f:.8g}\n" for w, f in vocab))
    metrics = {
        "settings": SETTINGS,
        "words": len(lexicon),
        "held_out_words": len(held_words),
        "tuning_examples_per_epoch": len(tuning_texts),
        "pretraining_tokens_per_epoch": n_tokens,
        "pretrain_loss_first_last": [pre_losses[0], sum(pre_losses[-10:]) / 10],
        "tune_loss_first_last": [tune_losses[0], sum(tune_losses[-10:]) / 10],
        "accuracy": results,
        "seconds": {"pretrain": round(pretrain_s), "tune": round(tune_s), "total": round(time.time() - started)},
        "threads": args.threads,
        "torch": torch.__version__,
    }
    atomic_write_json(out / "metrics.json", metrics)
    print(json.dumps(metrics["seconds"]), flush=True)


if __name__ == "__main__":
    main()
