"""Performance estimation: how good is a candidate architecture (Elsken et al. 2019, Section 5).

    train.py       train from scratch (the ground truth) and a cheap lower-fidelity proxy
    latency.py     measured latency, per-operation lookup tables and their check end to end
"""

from edgeai.estimation.latency import (
    Latency,
    TableCheck,
    build_latency_table,
    check_latency_table,
    layer_keys,
    load_latency_table,
    measure_latency,
    op_key,
    save_latency_table,
    table_latency,
)
from edgeai.estimation.train import (
    TrainResult,
    evaluate_accuracy,
    num_threads,
    proxy_accuracy,
    resolve_device,
    train_and_evaluate,
)
