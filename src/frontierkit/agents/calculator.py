"""A calculator tool: a recursive-descent parser for arithmetic expressions, evaluated exactly with
rationals (never ``eval``) -- the tool Toolformer (Schick et al. 2023, §3) inserts as ``[Calculator(...)]``.

Grammar (precedence climbing, ``**``/``^`` right-associative, binding tighter than unary minus as in Python):
    expr   := term (("+" | "-") term)*
    term   := unary (("*" | "/" | "//" | "%") unary)*
    unary  := ("-" | "+") unary | power
    power  := atom (("**" | "^") unary)?
    atom   := NUMBER | NAME | NAME "(" expr ("," expr)* ")" | "(" expr ")"
"""
from __future__ import annotations

import math
import re
from fractions import Fraction

from .tools import ToolError, tool

_TOKEN = re.compile(r"\s*(?:(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?|(\*\*|//|[-+*/%^(),])|([A-Za-z_]\w*))")
MAX_DIGITS = 1000
"""results with more digits are refused (bounds the work of ``9**9**9``)"""
CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
FUNCTIONS = {"sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max, "log": math.log,
             "log10": math.log10, "log2": math.log2, "exp": math.exp, "sin": math.sin, "cos": math.cos,
             "tan": math.tan, "floor": math.floor, "ceil": math.ceil}


def tokenize(text: str) -> list[str]:
    """Split an expression into number, operator and name tokens; anything else is an error."""
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ToolError(f"calculator: unexpected character {text[pos:].strip()[:1]!r} at position {pos}")
        out.append(m.group(0).strip())
        pos = m.end()
    return out


class _Parser:
    def __init__(self, tokens: list[str]):
        self.toks, self.i = tokens, 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            raise ToolError(f"calculator: expected {expected or 'a value'} but found {tok or 'the end'}")
        self.i += 1
        return tok

    def expr(self):
        v = self.term()
        while self.peek() in ("+", "-"):
            op, r = self.take(), self.term()
            v = v + r if op == "+" else v - r
        return v

    def term(self):
        v = self.unary()
        while self.peek() in ("*", "/", "//", "%"):
            op, r = self.take(), self.unary()
            if op != "*" and r == 0:
                raise ToolError("calculator: division by zero")
            v = v * r if op == "*" else v / r if op == "/" else v // r if op == "//" else v % r
            _check(v)
        return v

    def unary(self):
        if self.peek() in ("-", "+"):
            return -self.unary() if self.take() == "-" else self.unary()
        return self.power()

    def power(self):
        base = self.atom()
        if self.peek() in ("**", "^"):
            self.take()
            exp = self.unary()
            return _pow(base, exp)
        return base

    def atom(self):
        tok = self.take()
        if tok == "(":
            v = self.expr()
            self.take(")")
            return v
        if tok[0].isdigit() or tok[0] == ".":
            return Fraction(tok) if "e" not in tok.lower() else Fraction(float(tok))
        if tok in CONSTANTS:
            return CONSTANTS[tok]
        if tok in FUNCTIONS:
            self.take("(")
            args = [self.expr()]
            while self.peek() == ",":
                self.take()
                args.append(self.expr())
            self.take(")")
            try:
                return FUNCTIONS[tok](*args)
            except (ValueError, TypeError, OverflowError) as e:
                raise ToolError(f"calculator: {tok}{tuple(args)} is undefined ({e})") from None
        raise ToolError(f"calculator: unknown name {tok!r} (functions: {', '.join(FUNCTIONS)}; "
                        f"constants: {', '.join(CONSTANTS)})")


def _check(v):
    if isinstance(v, Fraction) and max(len(str(abs(v.numerator))), len(str(v.denominator))) > MAX_DIGITS:
        raise ToolError(f"calculator: result has more than {MAX_DIGITS} digits")
    return v


def _pow(base, exp):
    if isinstance(exp, Fraction) and exp.denominator == 1 and isinstance(base, Fraction):
        digits = math.log10(max(abs(base.numerator), abs(base.denominator), 2)) * abs(exp.numerator)
        if digits > MAX_DIGITS:
            raise ToolError(f"calculator: result has more than {MAX_DIGITS} digits")
        if base == 0 and exp < 0:
            raise ToolError("calculator: division by zero")
        return base ** exp
    try:
        out = float(base) ** float(exp)
    except (OverflowError, ZeroDivisionError) as e:
        raise ToolError(f"calculator: {e}") from None
    if isinstance(out, complex):
        raise ToolError("calculator: the result is not a real number")
    return out


def evaluate(expression: str):
    """The exact value of an arithmetic expression (Fraction when rational, float otherwise)."""
    p = _Parser(tokenize(expression))
    if p.peek() is None:
        raise ToolError("calculator: empty expression")
    v = p.expr()
    if p.peek() is not None:
        raise ToolError(f"calculator: unexpected {p.peek()!r} after a complete expression")
    return v


def format_number(v) -> str:
    """Integers exactly; other rationals and floats to 10 significant digits."""
    if isinstance(v, int) or (isinstance(v, Fraction) and v.denominator == 1):
        return str(int(v))
    f = float(v)
    if f.is_integer() and abs(f) < 1e15:
        return str(int(f))
    return f"{f:.10g}"


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly (+ - * / // % ** parentheses, sqrt, log, min, max, pi).

    Args:
        expression: the expression, e.g. "(12 + 30) * 4 / 7"
    """
    return format_number(evaluate(expression))
