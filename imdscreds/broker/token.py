"""The broker's token file: random, private, rewritten atomically, removed at exit.

Whoever can read the file may have the instance role's credentials, so the file is the access
control: mode 0600 (0640 with a group), in a directory no one else may enter (0700; 0710 with a
group, so the group can open the file by name but not list or change the directory). The token is
written without a trailing newline: botocore puts the file's bytes in the ``Authorization`` header
as they are and refuses a CR or LF.

The place is checked without following links: every directory from ``/`` down to the file's is
``lstat``-ed, and none may be a symlink owned by another user than root or us, owned by another
user, or writable by others (a sticky world-writable one such as ``/tmp`` is allowed above the
token's own directory, which must be ours). The file is then written through a descriptor of that
directory (``openat``, ``O_NOFOLLOW``), so a name swapped after the check is not followed. With a
group, the directory must belong to that group (one we make is given it).
"""

from __future__ import annotations

import contextlib
import errno
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
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        group: str | None = None,
        token: str | None = None,
    ) -> TokenFile:
        """Write a new random token (or ``token``) to ``path`` (default: ``token`` in a new
        private directory).

        An existing file there is replaced (a broker restarted on the same file hands its clients
        the new token at their next fetch: the SDKs re-read the file every time).
        """
        gid = None if group is None else _group_id(group)
        token = secrets.token_urlsafe(TOKEN_BYTES) if token is None else token
        try:
            target, made = _place(path, gid, group)
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


def _place(
    path: str | os.PathLike[str] | None, gid: int | None, group: str | None
) -> tuple[Path, bool]:
    """Where the token goes, and whether we made its directory (checked either way)."""
    made = False
    if path is None:
        directory = Path(tempfile.mkdtemp(prefix="imdscreds-"))  # 0700, ours
        made = True
        target = directory / "token"
    else:
        target = Path(os.path.normpath(Path(path).absolute()))
        directory = target.parent
        existing = directory
        while not os.path.lexists(existing):
            existing = existing.parent
        _check_ancestors(existing, final=existing == directory)
        if existing != directory:
            directory.mkdir(mode=0o700, parents=True)
            made = True
    if gid is not None and made:
        os.chown(directory, -1, gid)
        os.chmod(directory, 0o710)  # noqa: S103 - the group traverses, no one else
    elif made:
        os.chmod(directory, 0o700)  # whatever the umask
    _check_directory(directory, gid=gid, group=group)
    return target, made


def _refuse(directory: Path, why: str, hint: str) -> ConfigError:
    return ConfigError(
        f"The token file's directory {directory}: {why}; others could reach or replace the token.",
        setting="--token-file",
        source="argument",
        hint=hint,
    )


_OWN_HINT = (
    "Put the token in a directory of your own whose every parent belongs to root or you and is "
    "not writable by others (systemd: RuntimeDirectory=), or leave out --token-file for a fresh "
    "private one."
)


def _check_ancestors(directory: Path, *, final: bool) -> None:
    """Every component from ``/`` to ``directory``: no foreign symlink, owner, or write access."""
    trusted = {0, os.geteuid()}
    current = Path(directory.anchor)
    for part in directory.parts[1:]:
        current = current / part
        info = os.lstat(current)
        if stat.S_ISLNK(info.st_mode):
            if info.st_uid not in trusted:
                raise _refuse(current, f"a symlink owned by uid {info.st_uid}", _OWN_HINT)
            continue  # root's or ours (/var/run -> /run); what it points to is checked below
    # The real path, now that every link on the way is root's or ours.
    real = Path(os.path.realpath(directory))
    current = Path(real.anchor)
    for index, part in enumerate(("", *real.parts[1:])):
        current = current / part if part else current
        info = os.lstat(current)
        last = final and index == len(real.parts) - 1
        if info.st_uid not in trusted:
            raise _refuse(current, f"owned by uid {info.st_uid}", _OWN_HINT)
        sticky = info.st_mode & stat.S_ISVTX
        if info.st_mode & 0o022 and (last or not sticky):
            raise _refuse(
                current, f"mode {stat.S_IMODE(info.st_mode):04o}, writable by others", _OWN_HINT
            )


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


def _check_directory(directory: Path, *, gid: int | None, group: str | None) -> None:
    info = os.lstat(directory)
    mode = stat.S_IMODE(info.st_mode)
    # With a group, its members need to traverse (x), may list (r), never write.
    forbidden = 0o027 if gid is not None else 0o077
    want = "0710 (or 0750), group-owned by --group" if gid is not None else "0700"
    fix = (
        f"Use a directory of your own with mode {want} (`chmod {want[:4]} {directory}`), "
        "or leave out --token-file for a fresh private one (systemd: RuntimeDirectory= "
        "with RuntimeDirectoryMode=0700)."
    )
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise _refuse(directory, "not a directory (a symlink?)", fix)
    if info.st_uid != os.geteuid() or mode & forbidden:
        raise _refuse(directory, f"mode {mode:04o}, owned by uid {info.st_uid}", fix)
    if gid is not None and info.st_gid != gid:
        raise ConfigError(
            f"The token file's directory {directory} belongs to group {_group_name(info.st_gid)}, "
            f"not {group} (--group): members of {group} could not reach the token.",
            setting="--group",
            source="argument",
            hint=f"`chgrp {group} {directory}` (systemd: Group={group} makes RuntimeDirectory= "
            "that group's), or leave out --token-file for a new directory made for the group.",
        )


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return f"gid {gid}"


def _write(target: Path, token: str, gid: int | None) -> None:
    # A new file in the checked directory, reached through its descriptor, then one rename: a
    # client never reads half a token, a symlink planted at the target is replaced, not followed,
    # and a directory swapped for a link after the check is refused (O_NOFOLLOW).
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    directory = os.open(target.parent, flags)
    try:
        info = os.fstat(directory)
        if info.st_uid != os.geteuid():
            raise OSError(errno.EPERM, "the directory changed owner after it was checked")
        temporary = f".token-{secrets.token_hex(8)}"
        fd = os.open(
            temporary,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
            0o600,
            dir_fd=directory,
        )
        try:
            if gid is not None:
                os.fchown(fd, -1, gid)
            os.fchmod(fd, 0o640 if gid is not None else 0o600)
            os.write(fd, token.encode("ascii"))
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(temporary, dir_fd=directory)
            raise
        os.close(fd)
        os.replace(temporary, target.name, src_dir_fd=directory, dst_dir_fd=directory)
    finally:
        os.close(directory)
