"""Agents that use tools and plan: typed tools with derived JSON schemas, function calling (OpenAI tools /
tool_calls, parallel calls), ReAct (Yao et al. 2023) and plan-and-execute loops, an OS-process sandbox for
Python, a deterministic shop environment scored with tau-bench's pass^k (Yao et al. 2024), a BFCL-style
AST checker (Patil et al. 2024), grammar-constrained tool calls for in-process models, and Toolformer
(Schick et al. 2023) in miniature.

Python API: ``frontierkit.agents.tool`` (decorator) and ``Agent(model, tools).run(task) -> Result``."""
from __future__ import annotations

from typing import Any

from .tools import Tool, ToolError, tool

__all__ = ["Agent", "Result", "Tool", "ToolError", "tool"]


def __getattr__(name: str) -> Any:
    if name in ("Agent", "Result"):
        from . import loops
        return getattr(loops, name)
    raise AttributeError(name)
