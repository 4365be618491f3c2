"""python3 -m onprem_llm.gateway serve|purge|evict|erase-records --config PATH ...

  serve          run the gateway until SIGTERM (systemd unit, unprivileged user)
  purge          delete one tenant's cached answers (and its semantic-cache sets) and print
                 {"deleted": N, "semantic_removed": N, "tenant": ..., ...}
  evict          undo a wrong semantic hit by its request id: delete the answer it got and its
                 place in the vector set; print {"request_id": ..., "found": ..., "evicted": ...}
  erase-records  remove one tenant's (or user's) request audit records and content records from this
                 gateway's files, record the erasure, and print {"records_removed": N, ...}

Exit status: 0 done, 1 Redis failed during a purge or evict, 2 bad input (arguments or
configuration).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from .cache_key import SITE_SCOPE
from .config import ConfigError, GatewayConfig, load_config

EXIT_FAILED = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m onprem_llm.gateway",
        description="The onprem.llm gateway service: exact response cache and token accounting.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument("--config", required=True, metavar="PATH", help="gateway JSON config")
    purge = commands.add_parser("purge", help="delete one tenant's cached answers")
    purge.add_argument("--config", required=True, metavar="PATH", help="gateway JSON config")
    purge.add_argument(
        "--tenant",
        required=True,
        help=f"tenant whose entries go ('{SITE_SCOPE}' for entries shared by all tenants)",
    )
    purge.add_argument("--model", help="only this model's entries")
    purge.add_argument(
        "--older-than",
        type=float,
        metavar="SECONDS",
        help="only entries stored at least this long ago",
    )
    purge.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    evict = commands.add_parser(
        "evict", help="undo a wrong semantic hit: drop the answer it was given from the cache"
    )
    evict.add_argument("--config", required=True, metavar="PATH", help="gateway JSON config")
    evict.add_argument(
        "--request-id", required=True, help="the request id of the answer (X-Request-ID)"
    )
    evict.add_argument("--dry-run", action="store_true", help="find it, delete nothing")
    erase = commands.add_parser("erase-records", help="remove one tenant's request records")
    erase.add_argument("--config", required=True, metavar="PATH", help="gateway JSON config")
    erase.add_argument("--tenant", required=True, help="tenant whose records go")
    erase.add_argument(
        "--user",
        help="only this user's records (the `user` field of its requests, pseudonymised here)",
    )
    erase.add_argument("--dry-run", action="store_true", help="count, remove nothing")
    return parser


def _usage_error(message: str) -> int:
    print(f"onprem_llm.gateway: error: {message}", file=sys.stderr)
    return EXIT_USAGE


async def _purge(config: GatewayConfig, args: argparse.Namespace) -> tuple[int, int]:
    from .purge import purge, purge_semantic
    from .store import build_client, close_client

    client = build_client(config.redis, socket_timeout=10.0)
    try:
        deleted_keys: list[str] = []
        deleted = await purge(
            client,
            prefix=config.redis.key_prefix,
            scope=args.tenant,
            model=args.model,
            older_than=args.older_than,
            dry_run=args.dry_run,
            deleted_keys=deleted_keys,
        )
        semantic = 0
        if config.semantic is not None:
            semantic = await purge_semantic(
                client,
                prefix=config.redis.key_prefix,
                tenant=args.tenant,
                model=args.model,
                entry_keys=deleted_keys if args.older_than is not None else None,
                dry_run=args.dry_run,
            )
        return deleted, semantic
    finally:
        await close_client(client)


async def _evict(config: GatewayConfig, args: argparse.Namespace) -> dict[str, Any]:
    from .semantic import evict
    from .store import build_client, close_client

    client = build_client(config.redis, socket_timeout=10.0)
    try:
        return await evict(client, config.redis.key_prefix, args.request_id, dry_run=args.dry_run)
    finally:
        await close_client(client)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _usage_error(f"configuration {args.config}: {exc}")
    if args.command == "serve":
        from .service import serve

        asyncio.run(serve(config))
        return 0
    if args.command == "evict":
        if not args.request_id.strip():
            return _usage_error("--request-id: expected the request id of a cached answer")
        try:
            evicted = asyncio.run(_evict(config, args))
        except Exception as exc:
            print(
                f"onprem_llm.gateway: error: evict failed: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        print(json.dumps(evicted))
        return 0
    if not args.tenant.strip():
        return _usage_error("--tenant: expected a tenant name")
    if args.command == "erase-records":
        from .audit import AuditError, erase_tenant, pseudonym, read_key

        user = None
        if args.user is not None:
            if not args.user.strip():
                return _usage_error("--user: expected a user identifier")
            if config.audit.pseudonymisation_key_file is None:
                return _usage_error(
                    "--user: records carry no user on this gateway (no pseudonymisation key), "
                    "so none can be erased by user; erase the tenant instead"
                )
            try:
                user = pseudonym(read_key(config.audit.pseudonymisation_key_file), args.user)
            except AuditError as exc:
                return _usage_error(str(exc))
        if config.audit.path is None:
            empty = {"records_removed": 0, "content_removed": 0, "files": 0}
            print(json.dumps({"tenant": args.tenant, **empty}))
            return 0
        result = erase_tenant(
            config.audit.path,
            args.tenant,
            content_path=config.audit.content_path,
            user=user,
            dry_run=args.dry_run,
        )
        print(json.dumps(result))
        return 0
    if args.model is not None and not args.model.strip():
        return _usage_error("--model: expected a model name")
    if args.older_than is not None and not args.older_than >= 0:
        return _usage_error("--older-than: expected a number of seconds >= 0")
    if not config.redis.hosts:
        return _usage_error(f"configuration {args.config}: redis.hosts: expected Redis hosts")
    if config.cache.scope == SITE_SCOPE and args.tenant != SITE_SCOPE:
        print(
            f"onprem_llm.gateway: warning: cache.scope is '{SITE_SCOPE}': current entries are "
            f"shared and purged with --tenant {SITE_SCOPE}",
            file=sys.stderr,
        )
    try:
        deleted, semantic = asyncio.run(_purge(config, args))
    except Exception as exc:
        print(
            f"onprem_llm.gateway: error: purge failed: {type(exc).__name__}: {exc}", file=sys.stderr
        )
        return EXIT_FAILED
    result = {
        "deleted": deleted,
        "semantic_removed": semantic,
        "tenant": args.tenant,
        "model": args.model,
        "dry_run": args.dry_run,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
