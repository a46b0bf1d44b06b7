"""Permutation alignment of two states of one architecture (Entezari et al. 2022; Ainsworth et al. 2023).

    permuted_b = weight_matching(model, state_a, state_b)
    permuted_b = activation_matching(model, state_a, state_b, batch_of_inputs)

The permutation groups come from tracing the model (`trace`), or from an explicit spec (`spec`).
"""
from .matching import activation_matching, permutation_spec, weight_matching
from .spec import PermutationSpec, apply_permutation, invert, make_spec, random_permutations

__all__ = ["PermutationSpec", "activation_matching", "apply_permutation", "invert", "make_spec",
           "permutation_spec", "random_permutations", "weight_matching"]
