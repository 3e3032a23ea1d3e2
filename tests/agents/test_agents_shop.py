"""The shop environment (tau-bench style): >= 30 tasks of 2-6 calls, success = final DB equals the expected
one, pass^k by tau-bench's formula; the scripted oracle scores 1.0 (the harness is right), a random policy ~0."""
from __future__ import annotations

import json
import zlib
from math import comb

import pytest

from frontierkit.agents.backends import PolicyBackend
from frontierkit.agents.shop import Shop, evaluate, make_tasks, oracle_policy, pass_hat_k, random_policy


@pytest.fixture(scope="module")
def tasks():
    return make_tasks()


def test_tasks_are_many_distinct_and_multi_step(tasks):
    assert len(tasks) >= 30 and len({t.id for t in tasks}) == len(tasks)
    assert all(2 <= len(t.actions) <= 6 for t in tasks)
    assert len({t.expected for t in tasks}) == len(tasks)          # every task changes the DB its own way
    assert Shop().digest() not in {t.expected for t in tasks}


def test_oracle_policy_passes_every_task_k_1_to_4(tasks):
    report = evaluate(lambda task, trial: PolicyBackend(oracle_policy(task)), tasks, trials=4)
    assert report.successes == [4] * len(tasks)
    assert report.pass_k == {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}


def test_random_policy_near_zero(tasks):
    report = evaluate(lambda task, trial: PolicyBackend(random_policy(zlib.crc32(f"{task.id}/{trial}".encode()))),
                      tasks, trials=2)
    assert report.pass_k[1] <= 0.05


def test_pass_hat_k_matches_tau_bench_definition():
    # two tasks, n = 4: c = 4 -> 1 for every k; c = 2 -> C(2,k)/C(4,k) = 1/2, 1/6, 0, 0
    assert pass_hat_k([4, 2], 4, 1) == pytest.approx((1 + 2 / 4) / 2)
    assert pass_hat_k([4, 2], 4, 2) == pytest.approx((1 + comb(2, 2) / comb(4, 2)) / 2)
    assert pass_hat_k([4, 2], 4, 3) == pytest.approx(0.5) and pass_hat_k([4, 2], 4, 4) == pytest.approx(0.5)


def test_shop_rules_refuse_with_messages():
    shop = Shop()
    t = shop.tools
    delivered = next(o for o in json.loads(t["list_orders"].invoke({"customer_id": 1})) if o["status"] == "delivered")
    assert "only pending orders can be cancelled" in t["cancel_order"].invoke({"order_id": delivered["order_id"]})
    sku = delivered["items"][0]["sku"]
    too_many = delivered["items"][0]["qty"] + 1
    assert "refundable" in t["refund_item"].invoke({"order_id": delivered["order_id"], "sku": sku, "qty": too_many,
                                                   "reason": "x"})
    before = shop.digest()
    assert t["place_order"].invoke({"customer_id": 1, "sku": "KB-01", "qty": 999}).startswith("Error")
    assert shop.digest() == before                    # a refused action changes nothing
