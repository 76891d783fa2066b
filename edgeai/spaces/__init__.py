"""Search spaces: what can be searched (Lecture 11, "Search Space in NAS").

Every space is a `CategoricalSpace`: an ordered list of categorical decisions plus, for the
concrete spaces, `build(arch) -> nn.Module` and, where cheap, analytic `costs(arch)`.
"""

from edgeai.spaces.base import CategoricalSpace, make_rng

__all__ = ["CategoricalSpace", "make_rng"]
