"""The agents area's manifest: ``frontier agents`` (alias ``frontier agent``) and its tour section."""
from ..areas import Manifest

MANIFEST = Manifest(name="agents", help="tool-using agents: function calling, ReAct, plan-and-execute, sandbox, "
                                        "constrained tool calls, shop pass^k, BFCL-style checker",
                    commands="frontierkit.agents.commands:register",
                    tour={"agents": "frontierkit.agents.demo:tour"})
