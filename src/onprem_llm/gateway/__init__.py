"""The gateway service: between HAProxy and the engines on every gateway host.

An asyncio HTTP service (aiohttp) with an exact response cache in Redis (tenant-scoped,
deterministic requests only, fail-open) and token accounting for Prometheus. It needs only the
standard library, aiohttp, redis-py and prometheus_client, as Debian 12 ships them; nothing
here imports Ansible.

  python3 -m onprem_llm.gateway serve --config /etc/onprem-llm/gateway/gateway.json
  python3 -m onprem_llm.gateway purge --config ... --tenant acme [--model M] [--older-than S]

Modules: config (the JSON file), cache_key, policy (what may be cached), store (Redis),
sse, metrics, app (the request handler), service (serve), purge.
"""
