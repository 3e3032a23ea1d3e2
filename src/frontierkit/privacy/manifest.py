"""The privacy area's manifest: ``frontier privacy`` and its tour section. DP-trained models are ``vision``
models (the registry loads them like any classifier); a BatchNorm -> GroupNorm swap is a model transform."""
from ..areas import Manifest

MANIFEST = Manifest(name="privacy", help="DP-SGD with an RDP accountant, federated learning (FedAvg, FedProx, "
                                         "secure aggregation), CKKS homomorphic encryption",
                    commands="frontierkit.privacy.commands:register",
                    tour={"privacy": "frontierkit.privacy.demo:tour"},
                    transforms={"privacy.groupnorm": "frontierkit.privacy.dp:replace_batchnorm"})
