"""The explain area's manifest: ``frontier explain`` and its tour section (it saves no models)."""
from ..areas import Manifest

MANIFEST = Manifest(name="explain", help="Grad-CAM, SHAP, Integrated Gradients for any classifier kind",
                    commands="frontierkit.explain.commands:register",
                    tour={"explain": "frontierkit.explain.demo:tour"})
