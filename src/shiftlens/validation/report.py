"""The console report of `validate`: per method, what was planted, what was recovered, p and false positives."""

from __future__ import annotations

from typing import Any

from shiftlens.evidence import MIN_N


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
    """A method's declared-finding rate on the noise draws, then its headline test's own rate and effects."""
    rates = result["false_positive_rate"]
    declared, draws = rates.get(method), rates["draws"]
    if not draws:
        return "not measured (no noise draws)"
    text = (
        f"{declared:.0%} of {draws} noise draws declared"
        if declared is not None
        else f"declared rate not measured ({draws} noise draws: at least {MIN_N + 1} are needed)"
    )
    return text + f" ({_test_rate(rates, method)})"


def _test_rate(rates: dict[str, Any], test: str) -> str:
    """One test's rate of p < 0.05 on the noise draws, base vs base, and the tuned effect beside the draws'."""
    rate = rates["tests"].get(test)
    same = rates["base_vs_base"].get(test)
    itself = f"p = {_num(same, 3)}" if same is not None else f"not testable ({rates['base_vs_base_reasons'][test]})"
    alone = "n/a" if rate is None else f"{rate:.0%}"
    text = f"test alone {alone} of {rates['testable_draws'][test]} testable; base vs base {itself}"
    beyond = (rates.get("effect_beyond_noise") or {}).get(test)
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
        f"Table 1 AUC {_figure(result, 'table1_auc')} against the base's {_figure(result, 'table1_auc_base')}, "
        f"{_p(result, 'table1', holm=False)} (not a headline; followed vs unfollowed within the model "
        f"{_p(result, 'table1_within', holm=False)})",
        f"  beyond tuning-sized noise (the control-span effect): {_p(result, 'attribution_noise')}",
        f"  {follow}",
        f"  continued vs base: {_other(continued, 'attribution')}, beyond the control span "
        f"{_other(continued, 'attribution_control')}, beyond every placement "
        f"{_other(continued, 'attribution_placement')}, Table 1 {_other(continued, 'table1')}, beyond noise "
        f"{_other(continued, 'attribution_noise')}",
        f"  false positives: {_rate(result, 'attribution')}; "
        f"beyond every placement: {_test_rate(result['false_positive_rate'], 'attribution_placement')}; "
        f"raw score: {_test_rate(result['false_positive_rate'], 'attribution_score')}",
        f"heads — planted: {heads['relations']} relations in {layers} "
        f"({heads['words_in_vocabulary']} words in the list)",
        f"  recovered: recall {_figure(result, 'heads_planted_recall')} (base {_figure(result, 'heads_recall_base')}), "
        f"pair recall {_figure(result, 'heads_pair_recall')} (base {_figure(result, 'heads_pair_recall_base')}), "
        f"precision {_figure(result, 'heads_planted_precision')}",
        f"  planted pairs gained {_figure(result, 'heads_pair_gain')} "
        f"against {_figure(result, 'heads_pair_gain_null')} for random admissible pairs of the same query words, "
        f"{_p(result, 'heads')}; "
        f"Table 3 (not a headline) {_p(result, 'heads_table3', holm=False)}",
        f"  beyond tuning-sized noise: {_p(result, 'heads_noise')}",
        f"  continued vs base: {_other(continued, 'heads')}, beyond noise {_other(continued, 'heads_noise')}",
        f"  false positives: {_rate(result, 'heads')}; "
        f"Table 3: {_test_rate(result['false_positive_rate'], 'heads_table3')}",
        f"ffn — planted: {len(concepts)} concept(s){': ' + names if names else ''}",
        f"  recovered: recall {_figure(result, 'ffn_planted_recall')} (base {_figure(result, 'ffn_recall_base')}); "
        f"against random word sets {_p(result, 'ffn')}",
        f"  beyond tuning-sized noise: {_p(result, 'ffn_noise')}",
        f"  the down-projections' own part (the model's embeddings read through the base's down-projections "
        f"instead, not a headline): {_p(result, 'ffn_beyond_embeddings', holm=False)}",
        f"  continued vs base: {_other(continued, 'ffn')}, beyond noise {_other(continued, 'ffn_noise')}",
        f"  false positives: {_rate(result, 'ffn')}",
    ]
    return "\n".join(lines)
