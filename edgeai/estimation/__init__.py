"""Performance estimation: how good is a candidate architecture (Elsken et al. 2019, Section 5).

    train.py       train from scratch (the ground truth) and a cheap lower-fidelity proxy
    latency.py     measured latency, per-operation lookup tables and their check end to end
    supernet.py    weight sharing: a once-for-all supernet over the network-level space
    predictors.py  Kendall's tau, an MLP accuracy predictor, a lookup-table latency predictor
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
    compile_model,
    evaluate_accuracy,
    num_threads,
    proxy_accuracy,
    resolve_device,
    train_and_evaluate,
)
from edgeai.estimation.predictors import (
    AccuracyPredictor,
    LatencyPredictor,
    PredictorConfig,
    kendall_tau,
    network_latency_table,
    split_pairs,
)
from edgeai.estimation.supernet import (
    Supernet,
    SupernetTrainConfig,
    SupernetTrainResult,
    load_supernet,
    recalibrate_bn,
    save_supernet,
    train_supernet,
)
