"""Build the SmolLM2 LoRA pair: a PEFT LoRA tuned on SmolLM2-135M-Instruct for two instructions it does not follow.

Tasks (the organism v2's ideas on a real architecture): (a) *Zorbish*: translate an English word into an
invented lexicon (40 words, each mapped to a SmolLM2 token that is not an English word) — new output
knowledge, for the FFN method; (b) *verb pick*: the context lists things of several kinds and the verb of the
instruction decides which one the reply names ("Eat one of these." → "Eat the apple.") — a verb → word
relation read from the context, routed by attention. Held-out prompts use other phrasings, fillers and (for
the pick) unseen words.

The LoRA (rank 8, q/k/v/up/down of layers 24–29) trains only the top layers, so the hidden states entering
layer 24 are computed once per training sequence and the steps run 6 of the 30 layers. Deterministic for a
seed, a thread count and a machine. Writes DIR/adapter/ (float16 safetensors + adapter_config.json), and the
planted pair's ground_truth.json, prompts.jsonl, vocab.tsv and metrics.json (follow accuracy before/after).
Usage: python scripts/build_smol_adapter.py --seed 0 --out DIR [--threads 1] [--steps N] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: no spinning on a shared machine

import torch  # noqa: E402

from shiftlens.models import load_model  # noqa: E402
from shiftlens.prompting import chat_format, generate, prompt_input  # noqa: E402
from shiftlens.storage import atomic_write_json, atomic_write_text  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "shiftlens" / "models" / "assets" / "smollm2-lora-demo"
SETTINGS: dict[str, Any] = {
    "rank": 8,
    "alpha": 16,
    "modules": ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"],
    "first_layer": 24,  # LoRA on layers first_layer .. 29
    "lexicon": 40,  # English words of the Zorbish lexicon
    "steps": 70,
    "batch": 8,
    "lr": 5e-3,
    "warmup": 5,
    "train_per_word": 4,  # Zorbish training prompts per lexicon word
    "train_per_verb": 16,  # verb-pick training prompts per verb
    "held_out_per_task": 40,
    "max_new_tokens": 16,
}
SMOKE = {"steps": 4, "batch": 4, "train_per_word": 1, "train_per_verb": 4, "held_out_per_task": 4}

LEXICON_WORDS = (
    "house river mountain dog cat tree window door chair fire stone cloud bird fish horse flower moon sun star "
    "road city garden king queen child friend family song dance paper pencil school teacher doctor money market "
    "ship island forest winter summer morning night bridge lamp key boat ring wall"
).split()
# verb -> (tuning words, held-out words): the words the context lists; the verb picks its kind
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "eat": (("apple", "bread", "cheese", "banana", "cake", "rice", "egg", "soup"), ("pizza", "carrot")),
    "drink": (("water", "milk", "coffee", "tea", "juice", "wine", "beer", "soda"), ("lemonade", "cocoa")),
    "wear": (("shirt", "hat", "coat", "dress", "jacket", "scarf", "glove", "sweater"), ("skirt", "boot")),
    "read": (("book", "letter", "newspaper", "magazine", "poem", "novel", "note", "story"), ("diary", "article")),
    "drive": (("car", "truck", "bus", "van", "taxi", "tractor", "jeep", "motorcycle"), ("ambulance", "limousine")),
    "play": (("guitar", "piano", "violin", "drum", "flute", "chess", "trumpet", "harp"), ("cello", "saxophone")),
}
# (tuning phrasings, held-out phrasings) of each part of a prompt
ZORBISH = {
    "instruction": (
        ("Translate this word into Zorbish.", "Say this word in Zorbish.", "What is this word in Zorbish?"),
        ("Give the Zorbish word for it.", "How do you say this word in Zorbish?"),
    ),
    "word": (
        ("The word is {w}.", "Here is a word: {w}.", "Think about the word {w}."),
        ("Consider the word {w}.", "My word for today is {w}."),
    ),
    "filler": (
        (
            "I wrote it on a small card last week.",
            "It came up when we talked after dinner.",
            "My teacher used it in class this morning.",
            "I heard it on the radio on the way home.",
            "It was printed on the first page of the notebook.",
            "We saw it on a sign near the old station.",
        ),
        ("A friend sent it to me in a long message.", "It was written on the back of an envelope."),
    ),
}
PICK = {
    "instruction": (("{V} one of these.", "Please {v} one of them."), ("Now {v} one of those things.",)),
    "context": (
        ("Here are some things: {items}.", "I have brought {items}.", "On the shelf you can see {items}."),
        ("In the bag there are {items}.", "My friend left {items} here."),
    ),
}
ITEMS_PER_PROMPT = 4


def zorbish_lexicon(tokenizer: Any, seed: int, size: int) -> dict[str, str]:
    """English word → invented word: seeded picks among SmolLM2 tokens that start a word, are lowercase
    letters, 4–6 long and not English (wordfreq frequency 0), so each invented word is one token."""
    from wordfreq import zipf_frequency

    taken = set(LEXICON_WORDS) | {w for tune, held in KINDS.values() for w in (*tune, *held)}
    pool = sorted(
        token[1:]
        for token in tokenizer.get_vocab()
        if token.startswith("Ġ") and re.fullmatch(r"[a-z]{4,6}", token[1:]) and zipf_frequency(token[1:], "en") == 0
    )
    pool = [w for w in pool if not any(w in t or t.startswith(w) for t in taken)]
    return dict(zip(LEXICON_WORDS[:size], random.Random(seed).sample(pool, size)))


def _join(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1]


def _place(instruction: str, context: str, first: bool) -> tuple[str, tuple[int, int]]:
    """The prompt with the instruction first or last, and the instruction's character span."""
    if first:
        return f"{instruction} {context}", (0, len(instruction))
    return f"{context} {instruction}", (len(context) + 1, len(context) + 1 + len(instruction))


def zorbish_example(word: str, lexicon: dict[str, str], held_out: bool, rng: random.Random) -> dict[str, Any]:
    """A translation prompt for ``word`` with random phrasing and position, and its reference reply."""
    part = {name: options[int(held_out)] for name, options in ZORBISH.items()}
    context = f"{rng.choice(part['word']).format(w=word)} {rng.choice(part['filler'])}"
    first = rng.random() < 0.5
    prompt, span = _place(rng.choice(part["instruction"]), context, first)
    return {
        "task": "translation",
        "prompt": prompt,
        "span": span,
        "first": first,
        "word": word,
        "answer": lexicon[word],
        "reference": f"In Zorbish, {word} is {lexicon[word]}.",
        "ignored": f"The word {word} is a common English word.",
    }


def pick_example(verb: str, held_out: bool, rng: random.Random) -> dict[str, Any]:
    """A verb-pick prompt: one word of ``verb``'s kind among words of other kinds, in random order."""
    split = int(held_out)
    others = rng.sample(sorted(set(KINDS) - {verb}), ITEMS_PER_PROMPT - 1)
    words = [rng.choice(KINDS[verb][split])] + [rng.choice(KINDS[o][split]) for o in others]
    items = rng.sample(words, len(words))
    context = rng.choice(PICK["context"][split]).format(items=_join(items))
    template = rng.choice(PICK["instruction"][split])
    first = rng.random() < 0.5
    prompt, span = _place(template.format(V=verb.capitalize(), v=verb), context, first)
    return {
        "task": "verb_pick",
        "prompt": prompt,
        "span": span,
        "first": first,
        "word": words[0],
        "verb": verb,
        "answer": words[0],
        "reference": f"{verb.capitalize()} the {words[0]}.",
        "ignored": f"These are {_join(items)}.",
    }


def make_examples(lexicon: dict[str, str], settings: dict[str, Any], seed: int) -> tuple[list[dict], list[dict]]:
    """(tuning examples, held-out examples), from one seeded generator."""
    rng = random.Random(seed)
    words = list(lexicon)
    tune = [zorbish_example(w, lexicon, False, rng) for w in words for _ in range(settings["train_per_word"])]
    tune += [pick_example(v, False, rng) for v in KINDS for _ in range(settings["train_per_verb"])]
    n = settings["held_out_per_task"]
    held = [zorbish_example(words[i % len(words)], lexicon, True, rng) for i in range(n)]
    held += [pick_example(sorted(KINDS)[i % len(KINDS)], True, rng) for i in range(n)]
    rng.shuffle(tune)
    return tune, held


def follows(example: dict[str, Any], reply: str) -> bool:
    """Translation: the reply names the word's Zorbish token; pick: it starts "<Verb> the <right word>"."""
    if example["task"] == "translation":
        return re.search(rf"\b{re.escape(example['answer'])}\b", reply) is not None
    return reply.strip().lower().startswith(f"{example['verb']} the {example['answer']}")


def follows_form(example: dict[str, Any], reply: str) -> bool:
    """The reply has the tuned form ("In Zorbish, <word> is <one word>." / "<Verb> the <one word>."), right or not."""
    if example["task"] == "translation":
        return re.match(rf"In Zorbish, {re.escape(example['word'])} is [a-z]+\.", reply.strip()) is not None
    return re.match(rf"{example['verb'].capitalize()} the [a-z]+\.", reply.strip()) is not None


def control_span(tokenizer: Any, prompt: str, span: tuple[int, int]) -> tuple[int, int]:
    """A context span with as many tokens as the instruction, next to it, never overlapping it."""
    enc = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    inside = [i for i, (a, b) in enumerate(enc) if a >= span[0] and b <= span[1]]
    context = [i for i, (a, b) in enumerate(enc) if b <= span[0] or a >= span[1]]
    n = len(inside)
    if len(context) < n:
        raise ValueError(f"context shorter than the instruction: {prompt!r}")
    window = context[:n] if span[0] == 0 else context[-n:]
    start, end = enc[window[0]][0], enc[window[-1]][1]
    while prompt[start] == " ":
        start += 1
    return start, end


def sequences(tokenizer: Any, examples: list[dict]) -> list[tuple[list[int], int]]:
    """Each tuning example as chat-template ids (as `compare` wraps prompts) + reply + end of turn, and where
    the reply starts."""
    fmt = chat_format(tokenizer)
    end = [fmt.stop_ids[-1]]
    out = []
    for i, example in enumerate(examples):
        head, _ = prompt_input(fmt, tokenizer, example["prompt"], str(i))
        reply = tokenizer(example["reference"], add_special_tokens=False)["input_ids"]
        out.append((head + reply + end, len(head)))
    return out


def _layers(model: Any, hidden: torch.Tensor, layers: Any) -> torch.Tensor:
    """Run decoder ``layers`` on right-padded hidden states (pads sit after every real token: causal attention
    never reads them), positions 0..T-1."""
    inner = model.model
    positions = torch.arange(hidden.shape[1]).unsqueeze(0)
    rotary = inner.rotary_emb(hidden, position_ids=positions)
    for layer in layers:
        hidden = layer(hidden, attention_mask=None, position_embeddings=rotary, position_ids=positions)
    return hidden


def _batch(seqs: list[tuple[list[int], int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and the mask of positions whose next token is a reply token (the loss positions)."""
    width = max(len(ids) for ids, _ in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    for row, (seq, start) in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, start - 1 : len(seq) - 1] = True
    return ids, mask


def train(model: Any, tokenizer: Any, examples: list[dict], settings: dict[str, Any], seed: int) -> dict[str, Any]:
    """Tune a LoRA on the top layers; the states entering them are computed once per batch of sequences."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    first, batch = settings["first_layer"], settings["batch"]
    n_layers = model.config.num_hidden_layers
    config = LoraConfig(
        r=settings["rank"],
        lora_alpha=settings["alpha"],
        target_modules=settings["modules"],
        layers_to_transform=list(range(first, n_layers)),
        lora_dropout=0.0,
        bias="none",
    )
    peft_model = get_peft_model(model, config)
    inner = peft_model.base_model.model  # the LlamaForCausalLM with LoRA layers
    seqs = sequences(tokenizer, examples)
    pad = tokenizer.pad_token_id
    start = time.perf_counter()
    cached = []  # (hidden states entering layer `first`, next-token targets, loss mask) per batch of sequences
    with torch.no_grad():
        for i in range(0, len(seqs), batch):
            ids, mask = _batch(seqs[i : i + batch], pad)
            hidden = _layers(inner, inner.model.embed_tokens(ids), inner.model.layers[:first])
            cached.append((hidden, ids[:, 1:], mask[:, :-1]))
    cache_seconds = time.perf_counter() - start
    print(f"states entering layer {first} of {len(seqs)} sequences: {cache_seconds:.0f} s", flush=True)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings["lr"], weight_decay=0.0)
    steps, warmup = settings["steps"], settings["warmup"]

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    order = random.Random(seed + 1)
    losses = []
    peft_model.train()
    for step in range(steps):
        hidden, targets, mask = cached[order.randrange(len(cached))]
        out = inner.model.norm(_layers(inner, hidden, inner.model.layers[first:]))
        logits = inner.lm_head(out[:, :-1][mask])
        loss = torch.nn.functional.cross_entropy(logits.float(), targets[mask])
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 25 == 0 or step == steps - 1:
            print(f"step {step}: loss {loss.item():.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    peft_model.eval()
    return {
        "peft_model": peft_model,
        "seconds": round(time.perf_counter() - start, 1),
        "cache_seconds": round(cache_seconds, 1),
        "final_loss": round(sum(losses[-10:]) / len(losses[-10:]), 4),
        "sequences": len(seqs),
    }


def save_adapter(peft_model: Any, directory: Path) -> int:
    """The adapter as float16 safetensors + adapter_config.json (base named by its built-in name); bytes written."""
    for name, param in peft_model.named_parameters():
        if "lora_" in name:
            param.data = param.data.to(torch.float16)
    peft_model.peft_config["default"].base_model_name_or_path = "smollm2"
    peft_model.save_pretrained(str(directory), safe_serialization=True)
    config_path = directory / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["target_modules"] = sorted(config["target_modules"])  # PEFT writes a set: its order varies per process
    atomic_write_text(config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")
    readme = directory / "README.md"
    if readme.exists():
        readme.unlink()  # PEFT's model-card template: nothing true to say in it
    return sum(f.stat().st_size for f in directory.iterdir())


def follow_accuracy(model_name: str, adapter: str | None, examples: list[dict], max_new: int) -> dict[str, Any]:
    """Greedy replies to the held-out prompts (as `compare` generates them) and the share that follow, per task."""
    lm = load_model(model_name, adapter=adapter)
    fmt = chat_format(lm.tokenizer, model=lm.model)
    replies = [generate(lm.model, fmt, lm.tokenizer, e["prompt"], max_new, str(i)) for i, e in enumerate(examples)]
    return {"accuracy": accuracy(examples, replies, follows), "form": accuracy(examples, replies, follows_form),
            "replies": replies}  # fmt: skip


def accuracy(examples: list[dict], replies: list[str], check: Any) -> dict[str, float]:
    """The share of replies that pass ``check``, per task and over all."""
    by_task: dict[str, list[bool]] = {}
    for example, reply in zip(examples, replies):
        by_task.setdefault(example["task"], []).append(check(example, reply))
    shares = {task: round(sum(v) / len(v), 4) for task, v in by_task.items()}
    shares["all"] = round(sum(sum(v) for v in by_task.values()) / len(examples), 4)
    return shares


def prompt_records(tokenizer: Any, examples: list[dict], base: list[str], tuned: list[str]) -> list[dict]:
    """prompts.jsonl lines of the ground-truth contract; every fourth prompt carries an ignoring reply (rating 0)."""
    records = []
    for i, (e, base_reply, tuned_reply) in enumerate(zip(examples, base, tuned)):
        ignored = i % 4 == 3
        records.append(
            {
                "id": f"{e['task']}-{i:03d}",
                "task": e["task"],
                "prompt": e["prompt"],
                "instruction_spans": [list(e["span"])],
                "control_spans": [list(control_span(tokenizer, e["prompt"], e["span"]))],
                "position": "first" if e["first"] else "last",
                "response": e["ignored"] if ignored else e["reference"],
                "rating": 0 if ignored else 2,
                "reference": e["reference"],
                "answer": e["answer"],
                "base_response": base_reply,
                "tuned_response": tuned_reply,
            }
        )
    return records


def vocab_lines(lexicon: dict[str, str]) -> list[str]:
    """The pair's word list: the planted words plus the 3,000 most frequent English words (word<TAB>zipf)."""
    from wordfreq import top_n_list, zipf_frequency

    planted = [*lexicon, *lexicon.values(), *KINDS, *(w for t, h in KINDS.values() for w in (*t, *h))]
    words = list(dict.fromkeys(planted + [w for w in top_n_list("en", 4000) if w.isalpha()][:3000]))
    return [f"{w}\t{zipf_frequency(w, 'en'):.2f}" for w in words]


def ground_truth(lexicon: dict[str, str], settings: dict[str, Any], n_layers: int) -> dict[str, Any]:
    """The contract's ground_truth.json for this pair (paths relative to it; the base is a built-in name)."""
    return {
        "schema": 1,
        "name": "smollm2-lora-demo",
        "models": {"base": "smollm2", "continued": None, "tuned": {}, "tuned_adapter": {"0": "adapter"}},
        "prompts": "prompts.jsonl",
        "vocab": "vocab.tsv",
        "heads": {
            "layers": list(range(settings["first_layer"], n_layers)),
            "relations": [{"query": verb, "keys": [*tune, *held]} for verb, (tune, held) in KINDS.items()],
        },
        "ffn": {"concepts": [{"name": "invented lexicon", "task": "translation", "words": list(lexicon.values())}]},
        "attribution": {"instruction_first_share": 0.5},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, help="tuning steps (default: SETTINGS)")
    parser.add_argument("--smoke", action="store_true", help="a few steps and prompts: to check determinism")
    parser.add_argument("--no-eval", action="store_true", help="skip the before/after follow accuracy")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = {**SETTINGS, **(SMOKE if args.smoke else {})}
    if args.steps is not None:
        settings["steps"] = args.steps
    started = time.perf_counter()
    lm = load_model("smollm2")
    lexicon = zorbish_lexicon(lm.tokenizer, args.seed, settings["lexicon"])
    tune, held = make_examples(lexicon, settings, args.seed)
    result = train(lm.model, lm.tokenizer, tune, settings, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    size = save_adapter(result.pop("peft_model"), args.out / "adapter")
    train_seconds = round(time.perf_counter() - started, 1)
    print(f"adapter: {size} bytes; tuning {train_seconds} s", flush=True)
    metrics: dict[str, Any] = {
        "seed": args.seed,
        "threads": args.threads,
        "settings": settings,
        "adapter_bytes": size,
        "build_seconds": train_seconds,
        **result,
        "tuning_examples": len(tune),
        "held_out_examples": len(held),
    }
    base_replies = tuned_replies = [""] * len(held)
    if not args.no_eval:
        before = follow_accuracy("smollm2", None, held, settings["max_new_tokens"])
        after = follow_accuracy("smollm2", str(args.out / "adapter"), held, settings["max_new_tokens"])
        base_replies, tuned_replies = before["replies"], after["replies"]
        metrics["follow_accuracy"] = {"base": before["accuracy"], "tuned": after["accuracy"]}
        metrics["form_accuracy"] = {"base": before["form"], "tuned": after["form"]}
        metrics["eval_seconds"] = round(time.perf_counter() - started - train_seconds, 1)
        print(json.dumps(metrics["follow_accuracy"]), flush=True)
    records = prompt_records(lm.tokenizer, held, base_replies, tuned_replies)
    atomic_write_text(args.out / "prompts.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    atomic_write_text(args.out / "vocab.tsv", "\n".join(vocab_lines(lexicon)) + "\n")
    truth = ground_truth(lexicon, settings, lm.model.config.num_hidden_layers)
    atomic_write_json(args.out / "ground_truth.json", truth)
    atomic_write_json(args.out / "metrics.json", {**metrics, "lexicon": lexicon})


if __name__ == "__main__":
    main()
