"""A quick password hasher for the test process.

It writes ordinary `pbkdf2_sha256` hashes with fewer iterations; the iteration count is
part of each hash, so the Daphne and Celery processes the tests start verify them with
Django's own hasher.
"""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1000
