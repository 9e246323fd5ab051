"""``skyscene serve`` (the review service on uvicorn) and ``skyscene users`` (API tokens)."""

from __future__ import annotations

import logging
import os

__all__ = ["register"]

log = logging.getLogger(__name__)


def _serve(args) -> int:
    from skyscene.errors import InputFileError, MissingDependencyError
    from skyscene.review.config import CONFIG_ENV, ReviewConfig
    from skyscene.store import CandidateStore, StoreConfig

    try:
        import uvicorn
    except ImportError:
        raise MissingDependencyError(
            "skyscene serve needs uvicorn: pip install 'skyscene[serve]'"
        ) from None
    if args.model is not None and not os.path.isfile(args.model):
        raise InputFileError(f"model file {args.model}: no such file")
    threads = args.threads
    if threads is None:  # each worker process its share of the cores
        threads = max(1, (os.cpu_count() or 1) // max(1, args.workers))
    config = ReviewConfig(
        db_url=args.db,
        model_path=args.model,
        max_batch=args.max_batch,
        auto_upgrade=args.auto_upgrade,
        torch_threads=threads,
    )
    # the database must open (and be at the newest revision) before workers start
    CandidateStore(config.db_url, config=StoreConfig(auto_upgrade=config.auto_upgrade)).close()
    os.environ[CONFIG_ENV] = config.to_json()
    log.info(
        "serving %s on http://%s:%d with %d worker(s)", args.db, args.host, args.port, args.workers
    )
    uvicorn.run(
        "skyscene.review.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning" if args.quiet else "info",
        access_log=bool(args.verbose),
        # idle keep-alive connections live long enough for a client's next request
        timeout_keep_alive=30,
        server_header=False,
    )
    return 0


def _store(url: str):
    from skyscene.store import CandidateStore, StoreConfig

    return CandidateStore(url, config=StoreConfig(auto_upgrade=False))


def _users_add(args) -> int:
    from skyscene.review.auth import hash_token, new_token

    token = new_token()
    with _store(args.db) as store:
        store.add_user(args.name, role=args.role, token_hash=hash_token(token))
    print(token)
    log.info(
        "user %s (%s) added: the token above is shown once, only its hash is stored",
        args.name,
        args.role,
    )
    return 0


def _users_revoke(args) -> int:
    from skyscene.review.queries import ReviewQueries

    with _store(args.db) as store:
        changed = ReviewQueries(store.engine).revoke_user(args.name)
    log.info("user %s %s", args.name, "revoked" if changed else "was already revoked")
    return 0


def _users_list(args) -> int:
    from skyscene.review.queries import ReviewQueries

    with _store(args.db) as store:
        users = ReviewQueries(store.engine).users()
    for user in users:
        d = user.to_dict()
        state = f"revoked {d['revoked_at']}" if d["revoked_at"] else "active"
        print(f"{d['name']}\t{d['role']}\t{state}\tcreated {d['created_at']}")
    return 0


def register(commands, simulate) -> None:
    p = commands.add_parser(
        "serve",
        help="serve the candidate database and the real/bogus model over HTTP (review page)",
        description="Run the review service (FastAPI on uvicorn): the API under /api, the "
        "review page at /, OpenAPI docs at /docs. Needs skyscene[serve].",
    )
    p.add_argument("--db", required=True, help="database URL or SQLite path")
    p.add_argument(
        "--model",
        default=None,
        help="real/bogus checkpoint (default: the registry's served model, else the shipped one)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--max-batch", type=int, default=4096, help="most triplets per /api/score")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per worker (default: the CPU count divided by --workers)",
    )
    p.add_argument(
        "--auto-upgrade",
        action="store_true",
        help="migrate the database to the newest schema first",
    )
    p.set_defaults(func=_serve)

    users = commands.add_parser(
        "users",
        help="API tokens of the review service",
        description="Add, revoke and list review-service users.",
    )
    sub = users.add_subparsers(dest="users_command", metavar="ACTION")
    add = sub.add_parser("add", help="add a user and print a new token (shown once)")
    add.add_argument("name")
    add.add_argument("--role", choices=("reviewer", "admin"), default="reviewer")
    add.add_argument("--db", required=True, help="database URL or SQLite path")
    add.set_defaults(func=_users_add)
    revoke = sub.add_parser("revoke", help="revoke a user's token")
    revoke.add_argument("name")
    revoke.add_argument("--db", required=True, help="database URL or SQLite path")
    revoke.set_defaults(func=_users_revoke)
    lst = sub.add_parser("list", help="list users (never their tokens)")
    lst.add_argument("--db", required=True, help="database URL or SQLite path")
    lst.set_defaults(func=_users_list)

    def _users_help(args) -> int:
        users.print_help()
        return 2

    users.set_defaults(func=_users_help)
