"""One error root for the archiver; the CLI maps each class to a message and an exit code."""

from __future__ import annotations


class ArchiverError(Exception):
    """Base of every error the archiver reports to a user."""

    exit_code = 1


class ConfigError(ArchiverError):
    """The configuration file, an env override or a flag is wrong (names the key)."""

    exit_code = 2


class UsageError(ArchiverError):
    """A command was called with arguments that cannot work."""

    exit_code = 2


class SchemaOutOfDate(ArchiverError):
    """The metadata database schema is older (or newer) than this version expects."""

    exit_code = 2


class NotFound(ArchiverError):
    """A record, request or other named object does not exist."""


class BlobError(ArchiverError):
    """A blob could not be stored or read."""


class BlobCorrupt(BlobError):
    """A stored blob's bytes no longer hash to its address."""

    def __init__(self, sha256: str, actual: str | None = None):
        self.sha256 = sha256
        self.actual = actual
        msg = f"blob {sha256} is corrupt"
        if actual:
            msg += f" (its bytes hash to {actual})"
        super().__init__(msg)


class BlobMissing(BlobError):
    """A blob that the metadata names is not in the store."""

    def __init__(self, sha256: str):
        self.sha256 = sha256
        super().__init__(f"blob {sha256} is missing from the blob store")


class BlobLocked(BlobError):
    """The blob store refuses to destroy a blob: its retention has not expired or it is under legal hold."""


class ConnectorError(ArchiverError):
    """A platform connector could not complete a walk."""


class AuthError(ConnectorError):
    """The platform rejected the account's credentials; retrying cannot help."""


class RateLimited(ConnectorError):
    """The platform's rate limit held longer than the harvest may wait."""


class TransientError(ConnectorError):
    """A failure that may go away (5xx, network, platform code 1/2) and outlasted the retries."""


class MalformedResponse(ConnectorError):
    """A platform response that is not what its documented wire format says."""


class AccountBusy(ArchiverError):
    """Another harvest of the same account is running."""


class RequestError(ArchiverError):
    """An open-records request action that cannot be done (closed request, bad citation, text not found)."""


class ExportError(ArchiverError):
    """A disclosure packet could not be built (bad template, unsafe record id, invalid bag); nothing is left behind."""
