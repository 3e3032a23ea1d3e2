"""Privacy-preserving ML: DP-SGD with an RDP accountant, federated learning (FedAvg, FedProx, secure
aggregation), homomorphic encryption (CKKS through TenSEAL)."""
from .accountant import noise_multiplier_for, rdp_epsilon
from .dp import (DPConfig, DPRunConfig, PoissonBatches, check_dp_compatible, clipped_sum, dp_hooks,
                 per_sample_grads, replace_batchnorm, train_dp)
from .ghost import ghost_clipped_sum, ghost_supported

__all__ = ["DPConfig", "DPRunConfig", "PoissonBatches", "check_dp_compatible", "clipped_sum", "dp_hooks",
           "ghost_clipped_sum", "ghost_supported", "noise_multiplier_for", "per_sample_grads", "rdp_epsilon", "replace_batchnorm", "train_dp"]
