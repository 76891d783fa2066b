"""Search spaces: what can be searched (Lecture 11, "Search Space in NAS").

Every space is a `CategoricalSpace`: an ordered list of categorical decisions plus, for the
concrete spaces, `build(arch) -> nn.Module` and, where cheap, analytic `costs(arch)`.

    NASNetCellSpace   cell-level: B blocks of (input, input, op, op, combiner)   (nasnet.py)
    NetworkSpace      network-level: depth, width, kernel, expand, resolution     (network.py)
    TopologySpace     Auto-DeepLab resolution paths                               (topology.py)
    edge              device tiers, constraints, energy, MCUNet sub-space choice  (edge.py)
"""

from edgeai.spaces.base import CategoricalSpace, SubSpace, make_rng
from edgeai.spaces.edge import DEVICE_TIERS, Constraint
from edgeai.spaces.nasnet import NASNetCellSpace, nasnet_space_size
from edgeai.spaces.network import NetworkSpace, NetworkSpaceConfig
from edgeai.spaces.topology import TopologySpace, count_paths

__all__ = [
    "CategoricalSpace",
    "SubSpace",
    "make_rng",
    "NASNetCellSpace",
    "nasnet_space_size",
    "NetworkSpace",
    "NetworkSpaceConfig",
    "TopologySpace",
    "count_paths",
    "Constraint",
    "DEVICE_TIERS",
]
