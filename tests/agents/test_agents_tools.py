"""Tools: JSON schema derived from type hints + docstrings, argument validation fed back as text, and the
calculator parser (exact rationals, never eval)."""
from __future__ import annotations

from typing import Literal

import pytest

from frontierkit.agents import Tool, tool
from frontierkit.agents.calculator import calculator, evaluate
from frontierkit.agents.tools import ToolError, validate


@tool
def book(city: str, nights: int, budget: float = 100.0, kind: Literal["hotel", "hostel"] = "hotel",
         tags: list[str] | None = None) -> str:
    """Book a room.

    Args:
        city: where to stay
        nights: how many nights
        budget: most to pay per night
    """
    return f"{city}:{nights}:{kind}"


def test_schema_derived_from_hints_and_docstring():
    assert isinstance(book, Tool) and book.name == "book" and book.description == "Book a room."
    p = book.parameters
    assert p["required"] == ["city", "nights"]
    assert p["properties"]["city"] == {"type": "string", "description": "where to stay"}
    assert p["properties"]["nights"]["type"] == "integer"
    assert p["properties"]["budget"] == {"type": "number", "description": "most to pay per night", "default": 100.0}
    assert p["properties"]["kind"] == {"type": "string", "enum": ["hotel", "hostel"], "default": "hotel"}
    assert p["properties"]["tags"] == {"type": "array", "items": {"type": "string"}, "nullable": True,
                                       "default": None}
    assert book.spec()["function"]["name"] == "book" and book.spec()["type"] == "function"


def test_sphinx_docstring_and_plain_function():
    def f(x: int) -> int:
        """Double.

        :param x: a number
        """
        return 2 * x
    t = tool(f)
    assert t.parameters["properties"]["x"] == {"type": "integer", "description": "a number"}
    assert t.invoke('{"x": 4}') == "8"


@pytest.mark.parametrize("args,needle", [
    ({"nights": 2}, "missing required argument(s) city"),
    ({"city": "Oslo", "nights": "two"}, "book.nights must be of type integer"),
    ({"city": "Oslo", "nights": 2, "kind": "villa"}, "must be one of"),
    ({"city": "Oslo", "nights": 2, "pets": True}, "unexpected argument 'pets'"),
    ('{"city": ', "not valid JSON"),
])
def test_bad_arguments_become_error_observations(args, needle):
    out = book.invoke(args)
    assert out.startswith("Error:") and needle in out


def test_validate_rejects_bool_as_integer():
    with pytest.raises(ToolError):
        validate(True, {"type": "integer"})
    validate(3.0, {"type": "integer"})


@pytest.mark.parametrize("expr,value", [
    ("1+2*3", "7"), ("2**3**2", "512"), ("-2**2", "-4"), ("(1+2)/3", "1"), ("7/2", "3.5"), ("2^10", "1024"),
    ("123456*654321", "80779853376"), ("10//3 + 10%3", "4"), ("sqrt(16) + max(1, 5)", "9"), ("1/3", "0.3333333333"),
    ("999999 + 1", "1000000"), ("0.1+0.2", "0.3"),
])
def test_calculator_matches_python_arithmetic(expr, value):
    assert calculator.invoke({"expression": expr}) == value


@pytest.mark.parametrize("expr,needle", [
    ("1/0", "division by zero"), ("9**9**9", "more than 1000 digits"), ("__import__('os')", "unexpected character"),
    ("os + 1", "unknown name 'os'"), ("1 +", "expected a value"), ("(1", "expected )"), ("2 3", "unexpected '3'"),
])
def test_calculator_refuses_without_eval(expr, needle):
    out = calculator.invoke({"expression": expr})
    assert out.startswith("Error: calculator:") and needle in out


def test_calculator_exact_rationals():
    from fractions import Fraction
    assert evaluate("1/3 + 1/6") == Fraction(1, 2)
