"""Pure kernels on numpy arrays: no dimensions, no attributes, no I/O.

``single_level`` holds the closed form of the paper's single-level dot (Zhang & Lü,
Phys. Rev. E 111, 044112 (2025), eqs. 1-9) evaluated without cancellation; ``pauli`` is the
generic, batched Pauli master-equation engine for any number of many-body states and leads.
"""
