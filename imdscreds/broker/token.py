"""The broker's token file: random, private, rewritten atomically, removed at exit.

Whoever can read the file may have the instance role's credentials, so the file is the access
control: mode 0600 (0640 with a group), in a directory no one else may enter (0700; 0710 with a
group, so the group can open the file by name but not list or change the directory). The token is
written without a trailing newline: botocore puts the file's bytes in the ``Authorization`` header
as they are and refuses a CR or LF.
"""

from __future__ import annotations

import contextlib
import grp
import os
import secrets
import stat
import tempfile
from pathlib import Path

from imdscreds.errors import ConfigError

__all__ = ["TOKEN_BYTES", "TokenFile"]

TOKEN_BYTES = 32  # of randomness; URL-safe base64 makes 43 characters of it


class TokenFile:
    """A token, written to ``path``; :meth:`remove` takes the file (and a directory we made) away."""

    def __init__(self, path: Path, token: str, *, made_directory: bool) -> None:
        self.path = path
        self.token = token
        self._made_directory = made_directory

    def __repr__(self) -> str:  # the token stays out of it
        return f"TokenFile({str(self.path)!r})"

    @classmethod
    def create(
        cls, path: str | os.PathLike[str] | None = None, *, group: str | None = None
    ) -> TokenFile:
        """Write a new random token to ``path`` (default: ``token`` in a new private directory).

        An existing file there is replaced (a broker restarted on the same file hands its clients
        the new token at their next fetch: the SDKs re-read the file every time).
        """
        gid = None if group is None else _group_id(group)
        try:
            target, made = _place(path, gid)
            token = secrets.token_urlsafe(TOKEN_BYTES)
            _write(target, token, gid)
        except OSError as exc:
            raise ConfigError(
                f"Cannot write the token file {path or 'in a new temporary directory'}: "
                f"{exc.strerror or exc}.",
                setting="--token-file",
                source="argument",
                hint="Run as a user who may create it (and, with --group, who is a member of "
                "that group), or pick another --token-file.",
            ) from None
        return cls(target, token, made_directory=made)

    def remove(self) -> None:
        """Remove the file if it still holds our token (a newer broker may have replaced it)."""
        with contextlib.suppress(OSError):
            if self.path.read_text(encoding="ascii") == self.token:
                self.path.unlink()
        if self._made_directory:
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()


def _place(path: str | os.PathLike[str] | None, gid: int | None) -> tuple[Path, bool]:
    """Where the token goes, and whether we made its directory (checked either way)."""
    made = False
    if path is None:
        directory = Path(tempfile.mkdtemp(prefix="imdscreds-"))  # 0700, ours
        made = True
        target = directory / "token"
    else:
        target = Path(path).absolute()
        directory = target.parent
        if not directory.exists():
            directory.mkdir(mode=0o700, parents=True)
            made = True
    if gid is not None and made:
        os.chown(directory, -1, gid)
        os.chmod(directory, 0o710)  # noqa: S103 - the group traverses, no one else
    elif made:
        os.chmod(directory, 0o700)  # whatever the umask
    _check_directory(directory, grouped=gid is not None)
    return target, made


def _group_id(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigError(
            f"`{name}` is not a group on this host (--group).",
            setting="--group",
            source="argument",
            hint="Name an existing group whose members may read the token (`getent group NAME`).",
        ) from None


def _check_directory(directory: Path, *, grouped: bool) -> None:
    info = directory.stat()
    mode = stat.S_IMODE(info.st_mode)
    # With a group, its members need to traverse (x), may list (r), never write.
    forbidden = 0o027 if grouped else 0o077
    if info.st_uid != os.geteuid() or mode & forbidden:
        want = "0710 (or 0750), group-owned by --group" if grouped else "0700"
        raise ConfigError(
            f"The token file's directory {directory} is mode {mode:04o}, owned by uid "
            f"{info.st_uid}: others could reach or replace the token.",
            setting="--token-file",
            source="argument",
            hint=f"Use a directory of your own with mode {want} (`chmod {want[:4]} {directory}`), "
            "or leave out --token-file for a fresh private one (systemd: RuntimeDirectory= "
            "with RuntimeDirectoryMode=0700).",
        )


def _write(target: Path, token: str, gid: int | None) -> None:
    # A new file beside the target, then one rename: a client never reads half a token, and a
    # symlink planted at the target is replaced, not followed.
    fd, temporary = tempfile.mkstemp(prefix=".token-", dir=target.parent)
    try:
        if gid is not None:
            os.fchown(fd, -1, gid)
        os.fchmod(fd, 0o640 if gid is not None else 0o600)
        os.write(fd, token.encode("ascii"))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temporary)
        raise
    os.close(fd)
    os.replace(temporary, target)
