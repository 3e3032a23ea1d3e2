"""A small deterministic shop environment for multi-step tool use, scored like tau-bench (Yao et al. 2024):
a task succeeds when the final database equals the one the ground-truth actions produce, and reliability
over k trials is pass^k = E_task[ C(c, k) / C(n, k) ] (c successes of n trials; tau-bench §5).

The database (sqlite, in memory) holds customers, products with stock, orders with items and refunds; the
tools below are the only way to read or change it. Tasks are generated from templates over a fixed seed
database, each with its ground-truth action list (2-6 calls)."""
from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from dataclasses import dataclass, field
from math import comb
from typing import Any, Callable

from .tools import Tool, ToolError, tool

CUSTOMERS = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov", "Donald Knuth",
             "Frances Allen", "John McCarthy"]
PRODUCTS = [("KB-01", "keyboard", 4900), ("MS-02", "mouse", 1900), ("MN-03", "monitor", 18900),
            ("HD-04", "headphones", 7900), ("CB-05", "usb cable", 900), ("LP-06", "laptop stand", 3500),
            ("WC-07", "webcam", 5900), ("DK-08", "dock", 12900), ("SP-09", "speaker", 8900),
            ("CH-10", "chair", 24900)]
STATUSES = ("pending", "shipped", "delivered", "cancelled")
SCHEMA = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT UNIQUE);
CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT, price_cents INTEGER, stock INTEGER);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, status TEXT);
CREATE TABLE order_items (order_id INTEGER, sku TEXT, qty INTEGER, price_cents INTEGER, PRIMARY KEY (order_id, sku));
CREATE TABLE refunds (id INTEGER PRIMARY KEY, order_id INTEGER, sku TEXT, qty INTEGER, amount_cents INTEGER,
                      reason TEXT);
"""


def email_of(name: str) -> str:
    return name.lower().replace(" ", ".") + "@example.com"


def seed_db() -> sqlite3.Connection:
    """The fixed starting database (seeded: identical on every machine)."""
    rng = random.Random(0)
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.executescript(SCHEMA)
    db.executemany("INSERT INTO customers VALUES (?, ?, ?)",
                   [(i + 1, n, email_of(n)) for i, n in enumerate(CUSTOMERS)])
    db.executemany("INSERT INTO products VALUES (?, ?, ?, ?)",
                   [(s, n, p, rng.randint(0, 12)) for s, n, p in PRODUCTS])
    oid = 100
    for cid in range(1, len(CUSTOMERS) + 1):
        for status in ("pending", "delivered", rng.choice(STATUSES)):
            oid += 1
            db.execute("INSERT INTO orders VALUES (?, ?, ?)", (oid, cid, status))
            for sku, _, price in rng.sample(PRODUCTS, rng.randint(1, 2)):
                db.execute("INSERT INTO order_items VALUES (?, ?, ?, ?)", (oid, sku, rng.randint(1, 3), price))
    db.commit()
    return db


class Shop:
    """One episode's database and its tool API (every tool validates, then changes the DB or refuses)."""

    def __init__(self) -> None:
        self.db = seed_db()
        self.tools: dict[str, Tool] = {t.name: t for t in self._make_tools()}

    def state(self) -> str:
        """A canonical dump of every table (the thing success is judged on)."""
        rows = {t: self.db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
                for t in ("customers", "products", "orders", "order_items", "refunds")}
        return json.dumps(rows, sort_keys=True)

    def digest(self) -> str:
        return hashlib.sha1(self.state().encode()).hexdigest()[:12]

    def _one(self, sql: str, args: tuple, what: str) -> tuple:
        row = self.db.execute(sql, args).fetchone()
        if row is None:
            raise ToolError(what)
        return row

    def _make_tools(self) -> list[Tool]:
        db, one = self.db, self._one

        @tool
        def find_customer(email: str) -> dict:
            """Look a customer up by email.

            Args:
                email: the customer's email address
            """
            cid, name, mail = one("SELECT * FROM customers WHERE email = ?", (email,), f"no customer with email {email}")
            return {"customer_id": cid, "name": name, "email": mail}

        @tool
        def list_orders(customer_id: int) -> list:
            """List a customer's orders with status and items.

            Args:
                customer_id: the customer's id
            """
            one("SELECT id FROM customers WHERE id = ?", (customer_id,), f"no customer {customer_id}")
            out = []
            for oid, status in db.execute("SELECT id, status FROM orders WHERE customer_id = ? ORDER BY id",
                                          (customer_id,)):
                items = db.execute("SELECT sku, qty FROM order_items WHERE order_id = ? ORDER BY sku", (oid,))
                out.append({"order_id": oid, "status": status, "items": [{"sku": s, "qty": q} for s, q in items]})
            return out

        @tool
        def find_product(name: str) -> dict:
            """Find a product by (part of) its name: sku, price and stock.

            Args:
                name: product name, e.g. "mouse"
            """
            sku, pname, price, stock = one("SELECT * FROM products WHERE name LIKE ? ORDER BY sku", (f"%{name}%",),
                                           f"no product matching {name!r}")
            return {"sku": sku, "name": pname, "price_cents": price, "stock": stock}

        @tool
        def place_order(customer_id: int, sku: str, qty: int) -> dict:
            """Place a new pending order of one product; takes the quantity from stock.

            Args:
                customer_id: the customer's id
                sku: product sku
                qty: how many (>= 1)
            """
            one("SELECT id FROM customers WHERE id = ?", (customer_id,), f"no customer {customer_id}")
            _, _, price, stock = one("SELECT * FROM products WHERE sku = ?", (sku,), f"no product {sku}")
            if qty < 1 or qty > stock:
                raise ToolError(f"cannot order {qty} x {sku}: {stock} in stock")
            oid = db.execute("SELECT MAX(id) FROM orders").fetchone()[0] + 1
            db.execute("INSERT INTO orders VALUES (?, ?, 'pending')", (oid, customer_id))
            db.execute("INSERT INTO order_items VALUES (?, ?, ?, ?)", (oid, sku, qty, price))
            db.execute("UPDATE products SET stock = stock - ? WHERE sku = ?", (qty, sku))
            return {"order_id": oid, "status": "pending"}

        @tool
        def add_item(order_id: int, sku: str, qty: int) -> str:
            """Add a product to a pending order; takes the quantity from stock.

            Args:
                order_id: the order
                sku: product sku
                qty: how many (>= 1)
            """
            (status,) = one("SELECT status FROM orders WHERE id = ?", (order_id,), f"no order {order_id}")
            _, _, price, stock = one("SELECT * FROM products WHERE sku = ?", (sku,), f"no product {sku}")
            if status != "pending":
                raise ToolError(f"order {order_id} is {status}; only pending orders can change")
            if qty < 1 or qty > stock:
                raise ToolError(f"cannot add {qty} x {sku}: {stock} in stock")
            db.execute("INSERT INTO order_items VALUES (?, ?, ?, ?) ON CONFLICT(order_id, sku) "
                       "DO UPDATE SET qty = qty + excluded.qty", (order_id, sku, qty, price))
            db.execute("UPDATE products SET stock = stock - ? WHERE sku = ?", (qty, sku))
            return f"added {qty} x {sku} to order {order_id}"

        @tool
        def cancel_order(order_id: int) -> str:
            """Cancel a pending order and put its items back in stock.

            Args:
                order_id: the order
            """
            (status,) = one("SELECT status FROM orders WHERE id = ?", (order_id,), f"no order {order_id}")
            if status != "pending":
                raise ToolError(f"order {order_id} is {status}; only pending orders can be cancelled")
            for sku, qty in db.execute("SELECT sku, qty FROM order_items WHERE order_id = ?", (order_id,)).fetchall():
                db.execute("UPDATE products SET stock = stock + ? WHERE sku = ?", (qty, sku))
            db.execute("UPDATE orders SET status = 'cancelled' WHERE id = ?", (order_id,))
            return f"order {order_id} cancelled"

        @tool
        def ship_order(order_id: int) -> str:
            """Mark a pending order as shipped.

            Args:
                order_id: the order
            """
            (status,) = one("SELECT status FROM orders WHERE id = ?", (order_id,), f"no order {order_id}")
            if status != "pending":
                raise ToolError(f"order {order_id} is {status}; only pending orders can ship")
            db.execute("UPDATE orders SET status = 'shipped' WHERE id = ?", (order_id,))
            return f"order {order_id} shipped"

        @tool
        def refund_item(order_id: int, sku: str, qty: int, reason: str) -> dict:
            """Refund items of a delivered order (amount = qty x the price paid); returns the refund.

            Args:
                order_id: the order
                sku: product sku
                qty: how many to refund
                reason: why, e.g. "damaged"
            """
            (status,) = one("SELECT status FROM orders WHERE id = ?", (order_id,), f"no order {order_id}")
            if status != "delivered":
                raise ToolError(f"order {order_id} is {status}; only delivered orders can be refunded")
            bought, price = one("SELECT qty, price_cents FROM order_items WHERE order_id = ? AND sku = ?",
                                (order_id, sku), f"order {order_id} has no {sku}")
            done = db.execute("SELECT COALESCE(SUM(qty), 0) FROM refunds WHERE order_id = ? AND sku = ?",
                              (order_id, sku)).fetchone()[0]
            if qty < 1 or qty + done > bought:
                raise ToolError(f"cannot refund {qty} x {sku}: {bought - done} refundable")
            rid = db.execute("SELECT COALESCE(MAX(id), 0) FROM refunds").fetchone()[0] + 1
            db.execute("INSERT INTO refunds VALUES (?, ?, ?, ?, ?, ?)", (rid, order_id, sku, qty, qty * price, reason))
            return {"refund_id": rid, "amount_cents": qty * price}

        @tool
        def restock(sku: str, qty: int) -> str:
            """Add units of a product to stock.

            Args:
                sku: product sku
                qty: units to add (>= 1)
            """
            one("SELECT sku FROM products WHERE sku = ?", (sku,), f"no product {sku}")
            if qty < 1:
                raise ToolError("qty must be >= 1")
            db.execute("UPDATE products SET stock = stock + ? WHERE sku = ?", (qty, sku))
            return f"{sku} restocked by {qty}"

        return [find_customer, list_orders, find_product, place_order, add_item, cancel_order, ship_order,
                refund_item, restock]


@dataclass
class Task:
    """A user instruction, its ground-truth actions [(tool, args)] and the expected final DB digest."""
    id: str
    instruction: str
    actions: list[tuple[str, dict[str, Any]]]
    expected: str = ""


def _orders(shop: Shop, cid: int, status: str) -> list[dict]:
    return [o for o in json.loads(shop.tools["list_orders"].invoke({"customer_id": cid})) if o["status"] == status]


def make_tasks() -> list[Task]:
    """36 tasks from six templates over the seed database (each 2-6 calls), with expected DB digests."""
    shop = Shop()
    prods = {s: (n, p) for s, n, p in PRODUCTS}
    stock = dict(shop.db.execute("SELECT sku, stock FROM products").fetchall())
    tasks: list[Task] = []
    for i, name in enumerate(CUSTOMERS):
        cid, email = i + 1, email_of(name)
        pending = _orders(shop, cid, "pending")[0]
        delivered = _orders(shop, cid, "delivered")[0]
        base = [("find_customer", {"email": email}), ("list_orders", {"customer_id": cid})]
        tasks.append(Task(f"cancel-{cid}", f"I am {name} ({email}). Please cancel my pending order.",
                          base + [("cancel_order", {"order_id": pending["order_id"]})]))
        item = delivered["items"][0]
        tasks.append(Task(f"refund-{cid}", f"I am {name} ({email}). One {prods[item['sku']][0]} from my delivered "
                          f"order arrived damaged; refund one unit (reason: damaged).",
                          base + [("refund_item", {"order_id": delivered["order_id"], "sku": item["sku"], "qty": 1,
                                                   "reason": "damaged"})]))
        sku = [s for s in sorted(stock) if stock[s] >= 1][i % 5]
        tasks.append(Task(f"order-{cid}", f"I am {name} ({email}). Order one {prods[sku][0]} for me.",
                          [("find_customer", {"email": email}), ("find_product", {"name": prods[sku][0]}),
                           ("place_order", {"customer_id": cid, "sku": sku, "qty": 1})]))
        if i < 4:
            tasks.append(Task(f"ship-{cid}", f"Ship the pending order of {name} ({email}).",
                              base + [("ship_order", {"order_id": pending["order_id"]})]))
            low = sorted(stock, key=lambda s: (stock[s], s))[i]
            tasks.append(Task(f"restock-order-{cid}", f"Restock 5 units of the {prods[low][0]}, then order 2 of them "
                              f"for {name} ({email}).",
                              [("find_product", {"name": prods[low][0]}), ("restock", {"sku": low, "qty": 5}),
                               ("find_customer", {"email": email}),
                               ("place_order", {"customer_id": cid, "sku": low, "qty": 2})]))
            a, b = sorted(s for s in stock if stock[s] >= 1)[i], sorted(s for s in stock if stock[s] >= 1)[i + 4]
            tasks.append(Task(f"two-items-{cid}", f"I am {name} ({email}). Order one {prods[a][0]} and add one "
                              f"{prods[b][0]} to that same order.",
                              [("find_customer", {"email": email}), ("find_product", {"name": prods[a][0]}),
                               ("find_product", {"name": prods[b][0]}),
                               ("place_order", {"customer_id": cid, "sku": a, "qty": 1}),
                               ("add_item", {"order_id": 125, "sku": b, "qty": 1})]))
    for t in tasks:
        env = Shop()
        for name, args in t.actions:
            out = env.tools[name].invoke(args)
            assert not out.startswith("Error"), (t.id, name, out)
        t.expected = env.digest()
    return tasks


def oracle_policy(task: Task) -> Callable:
    """The ground-truth actions replayed as tool calls, then a final answer (checks the harness)."""
    from .backends import Reply, ToolCall

    def policy(messages, tools):
        done = sum(1 for m in messages if m["role"] == "tool")
        if done >= len(task.actions):
            return Reply("Done.")
        name, args = task.actions[done]
        return Reply("", [ToolCall(f"call_{done}", name, json.dumps(args))])
    return policy


def random_policy(seed: int, calls: int = 4) -> Callable:
    """Random tools with random plausible arguments (a floor near 0)."""
    from .backends import Reply, ToolCall
    rng = random.Random(seed)
    values = {"email": [email_of(n) for n in CUSTOMERS], "customer_id": list(range(1, 9)),
              "order_id": list(range(101, 126)), "sku": [p[0] for p in PRODUCTS], "qty": [1, 2, 3],
              "name": [p[1] for p in PRODUCTS], "reason": ["damaged"]}

    def policy(messages, tools):
        done = sum(1 for m in messages if m["role"] == "tool")
        if done >= calls:
            return Reply("Done.")
        spec = rng.choice(tools)["function"]
        args = {k: rng.choice(values[k]) for k in spec["parameters"]["properties"]}
        return Reply("", [ToolCall(f"call_{done}", spec["name"], json.dumps(args))])
    return policy


def pass_hat_k(successes: list[int], n: int, k: int) -> float:
    """tau-bench's pass^k: mean over tasks of C(c, k) / C(n, k) (all k of k i.i.d. trials succeed)."""
    return sum(comb(c, k) / comb(n, k) for c in successes) / len(successes)


@dataclass
class ShopReport:
    successes: list[int]
    trials: int
    pass_k: dict[int, float] = field(default_factory=dict)


def evaluate(make_backend: Callable[[Task, int], Any], tasks: list[Task] | None = None, trials: int = 4,
             max_steps: int = 12, loop: str = "function_calling", progress: bool = False) -> ShopReport:
    """Run every task ``trials`` times (a fresh DB each) and score pass^k for k = 1..trials."""
    from .loops import Agent
    tasks = tasks or make_tasks()
    successes = []
    it = tasks
    if progress:
        from tqdm import tqdm
        it = tqdm(tasks, desc="shop")
    for task in it:
        c = 0
        for trial in range(trials):
            env = Shop()
            Agent(make_backend(task, trial), list(env.tools.values()), loop=loop, max_steps=max_steps).run(
                task.instruction)
            c += env.digest() == task.expected
        successes.append(c)
    return ShopReport(successes, trials, {k: pass_hat_k(successes, trials, k) for k in range(1, trials + 1)})
