"""The robust area's manifest: ``frontier robust`` and its tour section. Adversarially trained models are
``vision`` models (the registry loads them like any classifier), so this area declares no model kind."""
from ..areas import Manifest

MANIFEST = Manifest(name="robust", help="adversarial attacks (FGSM, PGD, APGD), adversarial training, purification",
                    commands="frontierkit.robust.commands:register",
                    tour={"robust": "frontierkit.robust.demo:tour"})
