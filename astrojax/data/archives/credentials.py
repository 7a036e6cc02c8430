"""Credentials from environment variables or the keyring, and how a source sends them.

Secrets come only from the environment (``MAST_API_TOKEN``, ``NCBI_API_KEY``, ``ESO_USERNAME``
and ``ESO_PASSWORD``, ``ZOONIVERSE_USERNAME`` and ``ZOONIVERSE_PASSWORD``) or, when a variable
is unset, from the system keyring under the service ``astrojax`` with the variable's name as the
user name (``keyring set astrojax NCBI_API_KEY``). Set ``PYTHON_KEYRING_BACKEND=
keyring.backends.null.Keyring`` to turn the keyring off. A value is wrapped in :class:`Secret`,
whose repr and str never show it and which refuses to be pickled (so it cannot reach a config or
a checkpoint), and is registered for redaction the moment it is read.
"""

import base64
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from astrojax.data.archives.errors import CredentialError
from astrojax.data.archives.redaction import LOGGER_NAME, register_basic_auth, register_secret

log = logging.getLogger(LOGGER_NAME)

KEYRING_SERVICE = "astrojax"
KNOWN_CREDENTIALS = ("MAST_API_TOKEN", "NCBI_API_KEY", "ESO_USERNAME", "ESO_PASSWORD",
                     "ZOONIVERSE_USERNAME", "ZOONIVERSE_PASSWORD")


class Secret:
    """A credential value that never shows itself: use :meth:`reveal` at the point of sending."""

    __slots__ = ("name", "_value")

    def __init__(self, name: str, value: str):
        self.name = name
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, '***')"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError(f"the secret {self.name} cannot be pickled or saved")

    def __copy__(self) -> "Secret":
        return self

    def __deepcopy__(self, memo) -> "Secret":
        return self


class Credentials:
    """Reads named credentials from the environment, then the keyring.

    ``environ`` defaults to ``os.environ``; ``keyring_service=None`` skips the keyring (tests).
    """

    def __init__(self, environ: Mapping[str, str] | None = None,
                 keyring_service: str | None = KEYRING_SERVICE):
        self._environ = os.environ if environ is None else environ
        self._keyring_service = keyring_service
        self._from_keyring_cache: dict[str, str | None] = {}  # one keyring look-up per name

    def __repr__(self) -> str:
        return f"Credentials(keyring_service={self._keyring_service!r})"

    def __reduce__(self):
        raise TypeError("credentials cannot be pickled or saved")

    def get(self, name: str) -> Secret | None:
        """The credential ``name``, or None when neither the environment nor keyring has it."""
        value = self._environ.get(name)
        if not value and self._keyring_service:
            if name not in self._from_keyring_cache:
                self._from_keyring_cache[name] = self._from_keyring(name)
            value = self._from_keyring_cache[name]
        return Secret(name, value) if value else None

    def require(self, name: str, source: str, url: str) -> Secret:
        """The credential ``name``; raises :class:`CredentialError` saying how to set it."""
        secret = self.get(name)
        if secret is None:
            raise CredentialError(
                source, url, f"needs the credential {name}: set the environment variable {name} "
                f"or run `keyring set {self._keyring_service or KEYRING_SERVICE} {name}`",
                credential=name)
        return secret

    def _from_keyring(self, name: str) -> str | None:
        import keyring
        import keyring.errors

        try:
            return keyring.get_password(self._keyring_service, name)
        except keyring.errors.KeyringError as err:
            # No usable keyring (a headless machine) means the credential is simply not there.
            log.debug("keyring unavailable for %s: %s", name, type(err).__name__)
            return None


def _lookup(credentials: Credentials, name: str, required: bool, source: str,
            url: str) -> Secret | None:
    return credentials.require(name, source, url) if required else credentials.get(name)


@dataclass
class AuthParts:
    """What a credential adds to a request; ``names`` are the credentials used (not values)."""

    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    names: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"AuthParts(names={self.names!r})"


@dataclass(frozen=True)
class ApiKeyParam:
    """A key sent as a query parameter, e.g. ``ApiKeyParam("NCBI_API_KEY", "api_key")``."""

    credential: str
    param: str
    required: bool = False

    def apply(self, credentials: Credentials, source: str, url: str) -> AuthParts | None:
        secret = _lookup(credentials, self.credential, self.required, source, url)
        if secret is None:
            return None
        return AuthParts(params={self.param: secret.reveal()}, names=(self.credential,))


@dataclass(frozen=True)
class TokenHeader:
    """A token sent in a header, e.g. MAST: ``TokenHeader("MAST_API_TOKEN", prefix="token ")``."""

    credential: str
    header: str = "Authorization"
    prefix: str = "Bearer "
    required: bool = False

    def apply(self, credentials: Credentials, source: str, url: str) -> AuthParts | None:
        secret = _lookup(credentials, self.credential, self.required, source, url)
        if secret is None:
            return None
        return AuthParts(headers={self.header: self.prefix + secret.reveal()},
                         names=(self.credential,))


@dataclass(frozen=True)
class BasicLogin:
    """HTTP Basic login from two credentials, e.g. ``BasicLogin("ESO_USERNAME", "ESO_PASSWORD")``.

    The username is treated as a secret too (redacted everywhere).
    """

    username: str
    password: str
    required: bool = True

    def apply(self, credentials: Credentials, source: str, url: str) -> AuthParts | None:
        user = _lookup(credentials, self.username, self.required, source, url)
        password = _lookup(credentials, self.password, self.required, source, url)
        if user is None or password is None:
            return None
        register_basic_auth(user.reveal(), password.reveal())
        token = base64.b64encode(f"{user.reveal()}:{password.reveal()}".encode()).decode()
        return AuthParts(headers={"Authorization": f"Basic {token}"},
                         names=(self.username, self.password))


Auth = ApiKeyParam | TokenHeader | BasicLogin
