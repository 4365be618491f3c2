"""The semantic cache's labelled set through the gateway: semantic_pairs.py URL KEY MODEL PAIRS.

For each pair, the stored question and then the asked one (or its turns), both under a system
prompt naming the pair, so that each pair has a context, and a vector set, of its own. Prints
one JSON list: per pair its id, class, expectation, the second answer's Cache-Status and
X-Cache-Similarity, and whether that answer is the first one's."""

import json
import sys
import time
import urllib.error

from https_client import bearer, send


def ask(url, key, model, pair_id, messages):
    system = {"role": "system", "content": f"Labelled pair {pair_id}."}
    body = {"model": model, "messages": [system, *messages], "max_tokens": 4, "temperature": 0}
    try:
        reply = send(url, json.dumps(body).encode(), bearer(key), timeout=120)
        status = reply.status
    except urllib.error.HTTPError as error:
        reply, status = error, error.code
    with reply:
        headers = {name.lower(): value for name, value in reply.headers.items()}
        return status, headers, reply.read().decode()


def main() -> None:
    url, key, model, path = sys.argv[1:5]
    with open(path, encoding="utf-8") as source:
        pairs = json.load(source)["pairs"]
    results = []
    for pair in pairs:
        first = ask(url, key, model, pair["id"], [{"role": "user", "content": pair["stored"]}])
        # The answer is stored, and indexed, just after it is sent.
        time.sleep(0.5)
        turns = pair.get("asked_turns") or [{"role": "user", "content": pair["asked"]}]
        second = ask(url, key, model, pair["id"], turns)
        results.append(
            {
                "id": pair["id"],
                "class": pair["class"],
                "expect": pair["expect"],
                "statuses": [first[0], second[0]],
                "stored": first[1].get("cache-status", ""),
                "cache": second[1].get("cache-status", ""),
                "similarity": second[1].get("x-cache-similarity"),
                "same_answer": first[2] == second[2],
            }
        )
    print(json.dumps(results))


main()
