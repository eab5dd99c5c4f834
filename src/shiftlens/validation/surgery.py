"""Weight surgery that plants a known structure: word pairs in attention dimensions, a concept in a down-projection.

Pure tensor functions (no model lookup): they take the matrices the methods read (`shiftlens.architecture`)
and return edited copies, so a control plants exactly what the method is then asked to find.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PlantedPairs:
    """Query word ``query`` paired with ``keys`` in dimension ``dim`` of head ``head`` (word indices)."""

    head: int
    dim: int
    query: int
    keys: tuple[int, ...]

    def pairs(self) -> set[tuple[int, int]]:
        """The planted (query, key) pairs."""
        return {(self.query, k) for k in self.keys}


def unit_direction(vectors: torch.Tensor) -> torch.Tensor:
    """The unit mean direction of some word vectors (rows), each normalised first so no word dominates."""
    mean = torch.nn.functional.normalize(vectors.double(), dim=-1).mean(0)
    return mean / mean.norm()


def whitening_metric(population: torch.Tensor) -> torch.Tensor:
    """The metric `even_direction` measures norm in: the population's covariance plus a small ridge."""
    covariance = torch.cov(population.double().T)
    return covariance + 1e-3 * covariance.trace() / len(covariance) * torch.eye(len(covariance), dtype=torch.float64)


def even_direction(
    vectors: torch.Tensor, population: torch.Tensor | None = None, metric: torch.Tensor | None = None
) -> torch.Tensor:
    """The unit vector of least norm with equal, positive dot products with every given word vector (rows).

    For one word it is that word's unit vector; for several it lifts each word's projection by the same
    amount, where a mean direction would favour the words with the largest norms. With a ``population``
    (every word vector), least norm is measured in its whitened metric (`whitening_metric`; or give the
    ``metric`` itself), so the direction lifts the given words above the crowd instead of along the
    direction all words share.
    """
    vectors = vectors.double()
    if metric is None:
        metric = (
            torch.eye(vectors.shape[1], dtype=torch.float64) if population is None else whitening_metric(population)
        )
    if len(vectors) > vectors.shape[1]:
        raise ValueError(f"{len(vectors)} words cannot get equal projections in {vectors.shape[1]} dimensions")
    inverse_t = torch.linalg.solve(metric, vectors.T)  # M⁻¹ Vᵀ
    weights = torch.linalg.solve(vectors @ inverse_t, torch.ones(len(vectors), 1, dtype=torch.float64))
    direction = (inverse_t @ weights)[:, 0]
    return direction / direction.norm()


def plant_head_pairs(
    wq: torch.Tensor, wk: torch.Tensor, words: torch.Tensor, plants: list[PlantedPairs], strength: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """W_q and W_k (heads × head_dim × hidden) with each plant's rows moved towards its words.

    Row (head, dim) of W_q gains ``strength`` × its norm along the query's `even_direction`, the same row of
    W_k as much along the keys', both whitened by the word population, so the query's and every key's
    projections grow together, above the other words', and their products are positive. ``words``
    (V × hidden) are the vectors the heads method projects.
    """
    wq, wk = wq.clone().double(), wk.clone().double()
    metric = whitening_metric(words)
    for plant in plants:
        for matrix, direction in (
            (wq, even_direction(words[[plant.query]], metric=metric)),
            (wk, even_direction(words[list(plant.keys)], metric=metric)),
        ):
            row = matrix[plant.head, plant.dim]
            matrix[plant.head, plant.dim] = row + strength * row.norm() * direction.to(row)
    return wq, wk


def plant_concept(
    rows: torch.Tensor, direction: torch.Tensor, variance: float, generator: torch.Generator
) -> torch.Tensor:
    """Down-projection rows (intermediate × hidden) plus ``variance`` more along the unit ``direction``.

    Each neuron's output vector gains a·direction with a ~ N(0, variance), seeded by ``generator``: the
    rows' variance along the direction grows by ``variance`` (the n − 1 convention of the PCA, in expectation).
    """
    rows = rows.double()
    coefficients = torch.randn(len(rows), generator=generator, dtype=torch.float64) * variance**0.5
    return rows + coefficients[:, None] * direction.double()[None, :]
