"""The training loop's manifest: ``frontier train`` and the loop's and distributed tour sections."""
from ..areas import Manifest

MANIFEST = Manifest(
    name="train", help="the shared training loop on embedded data (digits, pycorpus)",
    commands="frontierkit.train.commands:register",
    tour={"train": "frontierkit.train.demo:tour", "distributed": "frontierkit.train.dist_demo:tour"},
)
