"""The console report of `validate`: per method, what was planted, what was recovered, p and false positives."""

from __future__ import annotations

from typing import Any


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and 0 < abs(value) < 10**-digits:
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def _figure(result: dict[str, Any], key: str, digits: int = 2) -> str:
    """A figure's mean over seeds, with min–max when several seeds differ."""
    entry = result.get(key) or {}
    text = _num(entry.get("mean"), digits)
    if entry.get("n", 0) > 1 and entry.get("min") != entry.get("max"):
        text += f" ({_num(entry['min'], digits)}–{_num(entry['max'], digits)} over {entry['n']} seeds)"
    return text


def _p(result: dict[str, Any], test: str, holm: bool = True) -> str:
    """A test's p over seeds (worst seed for several) with its Holm-adjusted value, or why it was not testable."""
    entry = result.get(f"{test}_p") or {}
    if not entry.get("n"):
        reasons = {s[f"{test}_reason"] for s in result["seeds"].values() if s.get(f"{test}_reason")}
        return "not testable" + (f" ({'; '.join(sorted(reasons))})" if reasons else "")
    worst = entry["max"] if entry["n"] > 1 else entry["mean"]
    label = "worst seed p" if entry["n"] > 1 else "p"
    if not holm:
        return f"{label} = {_num(worst, 3)}"
    adjusted = (result.get(f"{test}_p_adjusted") or {}).get("max")
    return f"{label} = {_num(worst, 3)} (Holm {_num(adjusted, 3)})"


def _other(entry: dict[str, Any] | None, test: str) -> str:
    if entry is None:
        return "no continued model"
    if entry.get(f"{test}_p") is None:
        return f"not testable ({entry.get(f'{test}_reason')})"
    return f"p = {_num(entry[f'{test}_p'], 3)}"


def _rate(result: dict[str, Any], method: str) -> str:
    rates = result["false_positive_rate"]
    rate, draws = rates.get(method), rates["draws"]
    if rate is None:
        return "not measured (no noise draws)"
    tested = rates["testable_draws"][method]
    same = rates["base_vs_base"].get(method)
    itself = f"p = {_num(same, 3)}" if same is not None else f"not testable ({rates['base_vs_base_reasons'][method]})"
    text = f"{rate:.0%} of {draws} noise draws ({tested} testable); base vs base {itself}"
    beyond = (rates.get("effect_beyond_noise") or {}).get(method)
    if beyond:
        text += (
            f"; effect {_num(beyond['tuned'], 2)} ({rates['noise_of']}) against {_num(beyond['noise_min'], 2)}"
            f"–{_num(beyond['noise_max'], 2)} for the draws ({beyond['share_at_least']:.0%} at least as large)"
        )
    return text


def report_text(result: dict[str, Any]) -> str:
    """The per-method summary lines of a `validate` result."""
    planted = result["planted"]
    continued = result.get("continued_vs_base")
    heads, concepts = planted["heads"], planted["ffn"]
    layers = "all layers" if heads["layers"] is None else f"layers {', '.join(map(str, heads['layers']))}"
    follow = (
        f"follow accuracy base {_figure(result, 'follow_acc_base')}, tuned {_figure(result, 'follow_acc_tuned')}"
        if result.get("follow_reason") is None
        else f"follow accuracy not measured: {result['follow_reason']}"
    )
    names = ", ".join(f"{c['name']} ({c['in_vocabulary']}/{c['words']} words in the list)" for c in concepts)
    lines = [
        f"validate {result['name']}: {result['n_attributed']} of {result['n_prompts']} prompts, "
        f"seeds {', '.join(result['seeds'])}",
        f"attribution — planted: {planted['attribution'] or 'nothing named'}",
        f"  recovered: instruction score {_figure(result, 'instruction_score_base')} → "
        f"{_figure(result, 'instruction_score')}, {_p(result, 'attribution')}; beyond the control span "
        f"{_p(result, 'attribution_control')}; beyond every placement {_p(result, 'attribution_placement')}; "
        f"Table 1 AUC {_figure(result, 'table1_auc')}, {_p(result, 'table1')}",
        f"  {follow}",
        f"  continued vs base: {_other(continued, 'attribution')}, beyond the control span "
        f"{_other(continued, 'attribution_control')}, beyond every placement "
        f"{_other(continued, 'attribution_placement')}",
        f"  false positives (beyond the control span): {_rate(result, 'attribution')}; "
        f"beyond every placement: {_rate(result, 'attribution_placement')}; "
        f"raw score: {_rate(result, 'attribution_score')}",
        f"heads — planted: {heads['relations']} relations in {layers} "
        f"({heads['words_in_vocabulary']} words in the list)",
        f"  recovered: recall {_figure(result, 'heads_planted_recall')} (base {_figure(result, 'heads_recall_base')}), "
        f"pair recall {_figure(result, 'heads_pair_recall')} (base {_figure(result, 'heads_pair_recall_base')}), "
        f"precision {_figure(result, 'heads_planted_precision')}",
        f"  planted pairs gained {_figure(result, 'heads_pair_gain')} "
        f"against {_figure(result, 'heads_pair_gain_null')} for random admissible pairs of the same query words, "
        f"{_p(result, 'heads')}; "
        f"Table 3 (not a headline) {_p(result, 'heads_table3', holm=False)}",
        f"  continued vs base: {_other(continued, 'heads')}",
        f"  false positives: {_rate(result, 'heads')}; Table 3: {_rate(result, 'heads_table3')}",
        f"ffn — planted: {len(concepts)} concept(s){': ' + names if names else ''}",
        f"  recovered: recall {_figure(result, 'ffn_planted_recall')} (base {_figure(result, 'ffn_recall_base')}); "
        f"against random word sets {_p(result, 'ffn')}",
        f"  continued vs base: {_other(continued, 'ffn')}",
        f"  false positives: {_rate(result, 'ffn')}",
    ]
    return "\n".join(lines)
