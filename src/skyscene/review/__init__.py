"""The review service (edge layer): HTTP API over the candidate database and the real/bogus
model, and the vetting page (``skyscene[serve]``: FastAPI, uvicorn).

Importing this package is light (configuration, tokens, consensus); the web app is in
:mod:`skyscene.review.app` (``create_app``), which needs the extra ``skyscene[serve]``.
See ``docs/review.md``.
"""

from skyscene.review.auth import ROLES, hash_token, new_token, role_allows
from skyscene.review.config import CONFIG_ENV, ReviewConfig
from skyscene.review.consensus import LABEL_VALUES, consensus

__all__ = [
    "CONFIG_ENV",
    "LABEL_VALUES",
    "ROLES",
    "ReviewConfig",
    "consensus",
    "hash_token",
    "new_token",
    "role_allows",
]
