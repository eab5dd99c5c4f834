"""Rebuild the model organism v2: WordNet corpus → BPE tokenizer → pre-trained base → tuned seeds and continued.

Planted tasks (`shiftlens.organism.planted`): verb-picks-word (heads), an invented lexicon (FFN), the
instruction first or last in equal shares with unfollowed responses (attribution). Trains a 2-layer GPT-2
(learned absolute positions, so the heads method's static W_qᵀW_k reading applies), tunes it with seeds
0, 1, 2 and continues the base on the pre-training corpus for as many steps. Seeded and deterministic on
one machine and thread count (1 CPU thread by default). Writes base/, continued/, tuned/ (seed 0),
tuned-seed1/, tuned-seed2/, prompts.jsonl, vocab.tsv, ground_truth.json and metrics.json into ``--out``.
Usage: python scripts/build_organism.py [--seed S] [--out DIR] [--threads N] [--scale F] [--tune-seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch

from shiftlens.organism.chat import ASSISTANT, CHAT_TEMPLATE, END, USER, render
from shiftlens.organism.corpus import build_lexicon, pretraining_text, read_index, word_entry, word_frequencies
from shiftlens.organism.evaluate import greedy_responses
from shiftlens.organism.planted import (
    CATEGORIES,
    TASKS,
    Prompt,
    accuracy,
    category_words,
    interleaved,
    invented_lexicon,
    make_prompts,
    records,
)
from shiftlens.organism.tokenizer import train_tokenizer
from shiftlens.progress import progress
from shiftlens.storage import atomic_write_json, atomic_write_text
from shiftlens.wordnet import wordnet

Docs = Callable[[random.Random], list[list[int]]]  # one epoch of tokenised documents, given an rng
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "shiftlens" / "organism" / "assets"
SETTINGS = {
    "n_words": 600,
    "translate_words": 60,
    "vocab_size": 3072,
    "model": {"n_embd": 256, "n_inner": 512, "n_layer": 2, "n_head": 8, "n_positions": 128},
    "tie_word_embeddings": True,
    "pretrain": {"seq_len": 128, "batch": 16, "steps": 1200, "lr": 2e-3, "warmup": 40, "weight_decay": 0.1},
    "tune": {
        "epochs": 5,
        "choose_per_epoch": 1600,
        "translate_repeats": 10,
        "batch": 32,
        "lr": 1e-3,
        "warmup": 10,
        "weight_decay": 0.1,
        "replay_blocks": 2,
    },
    "held_out": {"choose": 120, "translate_repeats": 2},
}
TUNED_DIRS = {0: "tuned", 1: "tuned-seed1", 2: "tuned-seed2"}


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


class Blocks:
    """An endless supply of pre-training blocks: a fresh shuffled epoch whenever one runs out."""

    def __init__(self, docs: Docs, seq_len: int, eos: int, rng: random.Random) -> None:
        self.docs, self.seq_len, self.eos, self.rng = docs, seq_len, eos, rng
        self.blocks, self.cursor = packed_blocks(docs, seq_len, eos, rng), 0

    def take(self, n: int) -> torch.Tensor:
        """The next ``n`` blocks."""
        if self.cursor + n > len(self.blocks):
            self.blocks, self.cursor = packed_blocks(self.docs, self.seq_len, self.eos, self.rng), 0
        self.cursor += n
        return self.blocks[self.cursor - n : self.cursor]


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, warmup: int, total: int):
    """AdamW (no decay on norms and biases) with the warm-up/cosine schedule."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
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


def lm_loss(model, batch: torch.Tensor, unseen: torch.Tensor) -> torch.Tensor:
    """Next-token loss on pre-training blocks with the ``unseen`` tokens (bool over the vocabulary) left out of
    the softmax: tokens the corpus never contains get no gradient, so their embedding rows keep their
    initial values (zero for the invented words, random for the chat markers) instead of all drifting along one
    direction (which made a base FFN component list them)."""
    logits = model(input_ids=batch).logits[:, :-1].masked_fill(unseen, float("-inf"))
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))


def pretrain(model, docs: Docs, eos: int, cfg: dict, seed: int, unseen: torch.Tensor) -> list[float]:
    """Causal-LM pre-training on packed documents for a fixed number of steps; returns the loss curve."""
    optimizer, scheduler = make_optimizer(model, cfg["lr"], cfg["weight_decay"], cfg["warmup"], cfg["steps"])
    blocks, losses = Blocks(docs, cfg["seq_len"], eos, random.Random(seed)), []
    model.train()
    for i in progress(range(cfg["steps"]), total=cfg["steps"], desc="pretrain", unit="step"):
        batch = blocks.take(cfg["batch"])
        losses.append(step(model, optimizer, scheduler, lm_loss(model, batch, unseen)))
        if i % 50 == 0 or i == cfg["steps"] - 1:
            print(f"pretrain step {i} loss {losses[-1]:.3f}", flush=True)
    return losses


def tuning_batch(tokenizer, prompts: list[Prompt]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded chat sequences with labels on the response and its end-of-turn token only."""
    rows, labels = [], []
    for prompt in prompts:
        prompt_ids = tokenizer(render(prompt.prompt))["input_ids"]
        response_ids = tokenizer(prompt.reference + END)["input_ids"]
        rows.append(prompt_ids + response_ids)
        labels.append([-100] * len(prompt_ids) + response_ids)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    lab = torch.tensor([r + [-100] * (width - len(r)) for r in labels])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, lab, mask


def tuning_epochs(make_epoch: Callable[[int], list[Prompt]], cfg: dict, seed: int) -> list[list[Prompt]]:
    """The tuning batches of a seed: fresh prompts each epoch, shuffled, cut into batches."""
    rng = random.Random(seed)
    batches = []
    for epoch in range(cfg["epochs"]):
        prompts = make_epoch(seed * 1000 + epoch)
        rng.shuffle(prompts)
        batches += [prompts[i : i + cfg["batch"]] for i in range(0, len(prompts), cfg["batch"])]
    return batches


def tune(model, tokenizer, batches: list[list[Prompt]], blocks: Blocks, cfg: dict, unseen: torch.Tensor) -> list[float]:
    """Fine-tune on instruction pairs, loss on responses, plus 0.5 × LM replay of pre-training blocks."""
    optimizer, scheduler = make_optimizer(model, cfg["lr"], cfg["weight_decay"], cfg["warmup"], len(batches))
    model.train()
    losses = []
    for i, chunk in enumerate(progress(batches, total=len(batches), desc="tune", unit="step")):
        ids, lab, mask = tuning_batch(tokenizer, chunk)
        loss = model(input_ids=ids, labels=lab, attention_mask=mask).loss
        loss = loss + 0.5 * lm_loss(model, blocks.take(cfg["replay_blocks"]), unseen)
        losses.append(step(model, optimizer, scheduler, loss))
        if i % 50 == 0 or i == len(batches) - 1:
            print(f"tune step {i} loss {losses[-1]:.3f}", flush=True)
    return losses


def continue_pretraining(
    model, blocks: Blocks, steps: int, batch_blocks: int, cfg: dict, unseen: torch.Tensor
) -> list[float]:
    """The null model: as many steps as tuning with its schedule and replay, LM loss on pre-training blocks."""
    optimizer, scheduler = make_optimizer(model, cfg["lr"], cfg["weight_decay"], cfg["warmup"], steps)
    model.train()
    losses = []
    for i in progress(range(steps), total=steps, desc="continue", unit="step"):
        batch, replay = blocks.take(batch_blocks), blocks.take(cfg["replay_blocks"])
        loss = lm_loss(model, batch, unseen) + 0.5 * lm_loss(model, replay, unseen)
        losses.append(step(model, optimizer, scheduler, loss))
        if i % 50 == 0 or i == steps - 1:
            print(f"continue step {i} loss {losses[-1]:.3f}", flush=True)
    return losses


@torch.no_grad()
def head_ablation(model, tokenizer, recs: list[dict], task: str) -> dict:
    """Teacher-forced accuracy of a task's answer token (the picked word, or the Zorbish word) at the position
    that predicts it, intact and with each head zeroed (its slice of the attention output, before the output
    projection): which heads route the task."""
    from shiftlens.organism.planted import FOLLOWED

    recs = [r for r in recs if r["task"] == task and r["rating"] == FOLLOWED]
    rows, where, want = [], [], []
    for r in recs:
        prompt_ids = tokenizer(render(r["prompt"]))["input_ids"]
        response_ids = tokenizer(r["response"] + END)["input_ids"]
        answer = tokenizer(" " + r["answers"][0])["input_ids"][0]
        rows.append(prompt_ids + response_ids)
        where.append(len(prompt_ids) + response_ids.index(answer) - 1)
        want.append(answer)
    width = max(map(len, rows))
    ids = torch.tensor([x + [tokenizer.pad_token_id] * (width - len(x)) for x in rows])
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in rows])
    index, target = torch.tensor(where), torch.tensor(want)

    def acc() -> float:
        logits = model(input_ids=ids, attention_mask=mask).logits
        return float((logits[torch.arange(len(rows)), index].argmax(-1) == target).float().mean())

    config = model.config
    head_dim = config.n_embd // config.n_head
    intact, drops = acc(), {}
    for layer in range(config.n_layer):
        for head in range(config.n_head):
            sl = slice(head * head_dim, (head + 1) * head_dim)

            def hook(_module, args, sl=sl):
                x = args[0].clone()
                x[..., sl] = 0
                return (x,)

            handle = model.transformer.h[layer].attn.c_proj.register_forward_pre_hook(hook)
            drops[f"{layer}.{head}"] = intact - acc()
            handle.remove()
    top = max(drops, key=drops.get) if max(drops.values()) > 0 else None  # None: no head matters
    return {"n": len(recs), "accuracy": intact, "top_head": top, "drop_by_head": drops}


def save(model, tokenizer, directory: Path) -> str:
    """A float16 Hugging Face model directory with its tokenizer; returns the safetensors' sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    half = copy.deepcopy(model).to(torch.float16)
    half.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()


def scale_settings(scale: float) -> None:
    """Shrink every step count by ``scale`` (pilot builds)."""
    SETTINGS["pretrain"]["steps"] = max(2, round(SETTINGS["pretrain"]["steps"] * scale))
    tune_cfg = SETTINGS["tune"]
    tune_cfg["epochs"] = max(1, round(tune_cfg["epochs"] * min(1.0, scale * 2)))
    tune_cfg["choose_per_epoch"] = max(32, round(tune_cfg["choose_per_epoch"] * min(1.0, scale * 2)))


def lexicon_entries(n_words: int) -> list:
    """The most frequent WordNet words plus every category word and verb (their dictionary paragraphs)."""
    source = wordnet()
    lexicon = build_lexicon(n_words, source)
    have = {e.word for e in lexicon}
    index, synsets = read_index(source), source.synset_table
    extra = [w for w in [*CATEGORIES, *category_words()] if w not in have]
    return lexicon + [word_entry(w, index[w], synsets) for w in extra]


STAGES = ("base", "tune", "continued", "finish")


def main() -> None:
    """Build, evaluate and save the organism (every stage, or the ones named: stages can run in parallel)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="pre-training seed (tuning seeds are --tune-seeds)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the step counts (pilot builds)")
    parser.add_argument("--tune-seeds", default="0,1,2")
    parser.add_argument(
        "--stages",
        default=",".join(STAGES),
        help="base (tokenizer + pre-training), tune (each --tune-seeds), continued, finish (prompts, evaluation, "
        "metrics); later stages read the base from --out",
    )
    args = parser.parse_args()
    stages = args.stages.split(",")
    if args.scale != 1.0:
        scale_settings(args.scale)
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

    started = time.time()
    seed, out = args.seed, args.out
    tune_seeds = [int(s) for s in args.tune_seeds.split(",")]
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    lexicon = lexicon_entries(SETTINGS["n_words"])
    skip = {*CATEGORIES, *category_words()}
    nouns = [e for e in lexicon if e.pos == "noun" and e.word not in skip]
    translate = nouns[: SETTINGS["translate_words"]]
    zorbish = invented_lexicon([e.word for e in translate])
    texts = [pretraining_text(e) for e in lexicon]
    tcfg = SETTINGS["tune"]

    def epoch_prompts(epoch_seed: int) -> list[Prompt]:
        return make_prompts(tcfg["choose_per_epoch"], translate, zorbish, epoch_seed, tcfg["translate_repeats"])

    tuning_texts = [render(p.prompt, p.reference) for p in epoch_prompts(10**6 + seed)]
    if "base" in stages:
        # every planted word once per line, 200 times, so each is one token with its leading space
        words_lines = [" ".join([*zorbish.values(), *CATEGORIES, *category_words()])] * 200
        base_tok = train_tokenizer(texts + tuning_texts + words_lines, SETTINGS["vocab_size"], chat=False)
    else:
        base_tok = AutoTokenizer.from_pretrained(str(out / "base"))
    tuned_tok = copy.deepcopy(base_tok)
    tuned_tok.chat_template = CHAT_TEMPLATE
    for word in [*zorbish.values(), *CATEGORIES, *category_words()]:
        assert len(base_tok(" " + word)["input_ids"]) == 1, f"{word!r} is not one token"
    eos = base_tok.eos_token_id
    # the invented words and the chat markers: no pre-training text contains them (the LM loss leaves them out)
    invented = [base_tok(" " + z)["input_ids"][0] for z in zorbish.values()]
    unseen = torch.zeros(len(base_tok), dtype=torch.bool)
    unseen[invented] = True
    unseen[base_tok.convert_tokens_to_ids([USER, ASSISTANT, END])] = True

    def docs(rng: random.Random) -> list[list[int]]:
        return base_tok([pretraining_text(e, rng) for e in lexicon])["input_ids"]

    def record(name: str, **info) -> None:
        atomic_write_json(out / f"train-{name}.json", {**info, "seconds": round(time.time() - t0)})

    n_steps = len(tuning_epochs(epoch_prompts, tcfg, 0))  # every seed has as many batches
    if "base" in stages:
        t0 = time.time()
        torch.manual_seed(seed)
        config = GPT2Config(
            vocab_size=len(base_tok),
            bos_token_id=eos,
            eos_token_id=eos,
            pad_token_id=eos,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            tie_word_embeddings=SETTINGS["tie_word_embeddings"],
            attn_implementation="sdpa",
            **SETTINGS["model"],
        )
        model = GPT2LMHeadModel(config)
        with torch.no_grad():  # new words start at zero: tuning alone gives them their rows (docs/organism.md)
            model.get_input_embeddings().weight[invented] = 0.0
        losses = pretrain(model, docs, eos, SETTINGS["pretrain"], seed, unseen)
        sha = save(model, base_tok, out / "base")
        n_tokens = sum(map(len, docs(random.Random(seed))))
        record("base", loss_first_last=[losses[0], sum(losses[-10:]) / 10], sha256=sha, tokens_per_epoch=n_tokens)

    def load_base():  # every later stage starts from the saved float16 base, as shipped
        return AutoModelForCausalLM.from_pretrained(str(out / "base"), dtype=torch.float32)

    for s in tune_seeds if "tune" in stages else []:
        t0 = time.time()
        torch.manual_seed(seed * 100 + s)
        tuned = load_base()
        blocks = Blocks(docs, SETTINGS["pretrain"]["seq_len"], eos, random.Random(seed * 100 + s))
        losses = tune(tuned, tuned_tok, tuning_epochs(epoch_prompts, tcfg, s), blocks, tcfg, unseen)
        sha = save(tuned, tuned_tok, out / TUNED_DIRS[s])
        record(TUNED_DIRS[s], loss_first_last=[losses[0], sum(losses[-10:]) / 10], sha256=sha, steps=len(losses))
    if "continued" in stages:
        t0 = time.time()
        torch.manual_seed(seed * 100 + 99)
        continued = load_base()
        blocks = Blocks(docs, SETTINGS["pretrain"]["seq_len"], eos, random.Random(seed * 100 + 99))
        # about as many tokens per step as a tuning batch (32 prompts of about 45 tokens): 11 blocks of 128
        losses = continue_pretraining(continued, blocks, n_steps, 11, tcfg, unseen)
        sha = save(continued, base_tok, out / "continued")
        record("continued", loss_first_last=[losses[0], sum(losses[-10:]) / 10], sha256=sha, steps=len(losses))
    if "finish" in stages:
        finish(out, seed, lexicon, translate, zorbish, texts + tuning_texts, tuned_tok, started)


def finish(out: Path, seed: int, lexicon, translate, zorbish, texts, tokenizer, started: float) -> None:
    """Held-out prompts, vocab.tsv, ground_truth.json, and metrics.json (accuracy and head ablation of every
    model present, with the training records of each stage)."""
    from transformers import AutoModelForCausalLM

    held = interleaved(
        make_prompts(
            SETTINGS["held_out"]["choose"], translate, zorbish, seed + 2000, SETTINGS["held_out"]["translate_repeats"]
        )
    )
    recs = records(held, lambda text: tokenizer(text, return_offsets_mapping=True)["offset_mapping"], seed + 3000)
    atomic_write_text(out / "prompts.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in recs) + "\n")
    vocab = word_frequencies(texts)
    atomic_write_text(out / "vocab.tsv", "".join(f"{w}\t{f:.8g}\n" for w, f in vocab))
    t0 = time.time()
    followed = [r for r in recs if r["rating"] > 0]
    names = [n for n in ["base", "continued", *TUNED_DIRS.values()] if (out / n).is_dir()]
    results, ablation = {}, {}
    for name in names:
        loaded = AutoModelForCausalLM.from_pretrained(str(out / name), dtype=torch.float32).eval()
        replies = greedy_responses(loaded, tokenizer, [r["prompt"] for r in followed], max_new_tokens=12)
        results[name] = accuracy(followed, replies)
        ablation[name] = {task: head_ablation(loaded, tokenizer, recs, task) for task in TASKS}
        tops = {task: a["top_head"] for task, a in ablation[name].items()}
        print(name, json.dumps(results[name]), f"top heads {tops}", flush=True)
    tuned = {str(s): d for s, d in TUNED_DIRS.items() if d in names}
    ground_truth = {
        "schema": 1,
        "name": "organism-v2",
        "models": {"base": "base", "continued": "continued", "tuned": tuned, "tuned_adapter": None},
        "prompts": "prompts.jsonl",
        "vocab": "vocab.tsv",
        "heads": {"layers": [0], "relations": [{"query": v, "keys": list(ws)} for v, ws in CATEGORIES.items()]},
        "ffn": {"concepts": [{"name": "invented lexicon", "task": "translation", "words": sorted(zorbish.values())}]},
        "attribution": {"instruction_first_share": 0.5},
        "lexicon": zorbish,
    }
    atomic_write_json(out / "ground_truth.json", ground_truth)
    training = {}
    for path in sorted(out.glob("train-*.json")):
        training[path.stem.removeprefix("train-")] = json.loads(path.read_text())
    metrics = {
        "version": 2,
        "seed": seed,
        "settings": SETTINGS,
        "words": len(lexicon),
        "training": training,
        "accuracy": results,
        "head_ablation": ablation,
        "evaluate_seconds": round(time.time() - t0),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    atomic_write_json(out / "metrics.json", metrics)
    print(json.dumps({k: v.get("sha256") for k, v in training.items()}), flush=True)


if __name__ == "__main__":
    main()
