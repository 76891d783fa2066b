"""Search strategies: how to explore a search space (Lecture 11, "Search Strategy in NAS").

Every strategy is ask/tell over a `CategoricalSpace`; `search` runs any of them.
"""

from edgeai.strategies.base import SearchExhausted, SearchResult, Strategy, Trial, pareto_front, search
from edgeai.strategies.evolution import Evolution
from edgeai.strategies.grid import CompoundScalingSpace, GridSearch, compound_scaling
from edgeai.strategies.objectives import mnasnet_reward
from edgeai.strategies.random_search import RandomSearch

__all__ = [
    "Strategy",
    "SearchExhausted",
    "SearchResult",
    "Trial",
    "search",
    "pareto_front",
    "GridSearch",
    "RandomSearch",
    "Evolution",
    "CompoundScalingSpace",
    "compound_scaling",
    "mnasnet_reward",
]
