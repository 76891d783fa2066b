"""Search strategies: how to explore a search space (Lecture 11, "Search Strategy in NAS").

Every strategy is ask/tell over a `CategoricalSpace`; `search` runs any of them. The gradient
strategies (DARTS, ProxylessNAS) train a weight-sharing supernet instead and return the same
`SearchResult` (one trial per epoch, with the derived architecture).
"""

from edgeai.strategies.base import SearchExhausted, SearchResult, Strategy, Trial, TrialError, pareto_front, search
from edgeai.strategies.evolution import Evolution
from edgeai.strategies.grid import CompoundScalingSpace, GridSearch, compound_scaling
from edgeai.strategies.objectives import mnasnet_reward
from edgeai.strategies.random_search import RandomSearch
from edgeai.strategies.reinforce import Reinforce, ReinforceConfig
from edgeai.strategies.gradient import GradientSearchResult
from edgeai.strategies.darts import DartsConfig, DartsSearch, Genotype, darts_search
from edgeai.strategies.proxyless import ProxylessConfig, ProxylessSearch, ProxylessSpace, proxyless_search

__all__ = [
    "Strategy",
    "SearchExhausted",
    "SearchResult",
    "Trial",
    "TrialError",
    "search",
    "pareto_front",
    "GridSearch",
    "RandomSearch",
    "Evolution",
    "CompoundScalingSpace",
    "compound_scaling",
    "mnasnet_reward",
    "Reinforce",
    "ReinforceConfig",
    "GradientSearchResult",
    "DartsConfig",
    "DartsSearch",
    "Genotype",
    "darts_search",
    "ProxylessConfig",
    "ProxylessSearch",
    "ProxylessSpace",
    "proxyless_search",
]
