"""Send subscribers' requests through the inference units and print a few answers.

Usage: python examples/aiu/client.py [--redis redis://127.0.0.1:6379/0] [--requests 2000] [--customers 200]

Each customer's requests carry the customer as their key, so a customer's requests are answered in the order
they were sent (what a sequence model needs), while different customers' requests share batches.
"""

from __future__ import annotations

import argparse
import random

from sustain.inference import InferenceClient

PLANS = ["basic", "standard", "premium"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--model", default="churn-aiu")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows, keys = [], []
    for _ in range(args.requests):
        customer = rng.randrange(args.customers)
        row = {"tenure": rng.randint(0, 72), "monthly": round(rng.uniform(20, 120), 2), "plan": rng.choice(PLANS)}
        rows.append(row)
        keys.append(f"customer-{customer}")
    with InferenceClient(args.redis, args.model) as client:
        print(client.predict(rows[0], key=keys[0]))  # one request, waited for
        ids = client.submit_many(rows[1:], keys[1:])  # the rest in one round trip
        answers = client.answers(ids, timeout=120)
    churn = sum(1 for a in answers.values() if a.prediction and a.prediction["label"] == "churn")
    failed = sum(1 for a in answers.values() if a.error is not None)
    print(f"{len(answers) + 1} answered ({churn} churn, {failed} failed) of {args.requests}")


if __name__ == "__main__":
    main()
