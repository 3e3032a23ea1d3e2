"""The data package's manifest: ``frontier data``."""
from ..areas import Manifest

MANIFEST = Manifest(name="data", help="embedded datasets and the BPE tokenizer",
                    commands="frontierkit.data.commands:register")
