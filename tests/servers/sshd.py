"""A real SSH git server: Debian's openssh-server on a loopback port, git-shell as forced command.

Nothing here imports pytest (fixtures live in tests/fixtures_git.py).

Why it is built this way:
- sshd runs in the foreground (`-D -e`) with its own config, host key, pid file and
  authorized_keys under a private directory, on a free 127.0.0.1 port; no system config is read.
- The one authorized key is forced through `git-shell -c "$SSH_ORIGINAL_COMMAND"`, so the key can
  run git-upload-pack / git-receive-pack and nothing else, exactly as a hosting service allows.
- The server logs in as the user running the tests (root in CI). A `known_hosts` line for
  `[127.0.0.1]:port` is produced from the generated host key, so clients can verify the host
  strictly (no trust on first use).
- Started in a new process group; the group is stopped.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import free_port, require_binary, spawned
from tests.servers.git_http import stop_group, wait_for_port

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "/usr/bin/ssh-keygen"
GIT_SHELL = "/usr/bin/git-shell"


@dataclass
class SshServer:
    """A running sshd: `identity` logs in as `user`; `known_hosts` pins the host key."""

    port: int
    user: str
    identity: str = field(repr=False)  # the client's private key (OpenSSH format)
    known_hosts: str  # one line: "[127.0.0.1]:port ssh-ed25519 AAAA..."
    _process: subprocess.Popen[bytes] | None = field(repr=False, default=None)

    def url(self, repo: Path) -> str:
        """An ssh:// URL for the bare repository at absolute path `repo`."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}{repo}"

    def stop(self) -> None:
        """Stop sshd and any session it forked (the whole process group)."""
        if self._process is not None:
            stop_group(self._process.pid, [self._process])


def start(base_dir: Path) -> SshServer:
    """Start sshd on a free 127.0.0.1 port with a generated host key and user key."""
    for binary in (SSHD, SSH_KEYGEN, GIT_SHELL):
        require_binary(binary)
    base_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        # sshd refuses to start without its privilege-separation directory.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    host_key = base_dir / "ssh_host_ed25519_key"
    user_key = base_dir / "id_ed25519"
    for key in (host_key, user_key):
        subprocess.run(
            [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key)],
            check=True,
            capture_output=True,
        )
    authorized = base_dir / "authorized_keys"
    forced = f'command="{GIT_SHELL} -c \\"$SSH_ORIGINAL_COMMAND\\"",restrict'
    authorized.write_text(f"{forced} {user_key.with_suffix('.pub').read_text().strip()}\n")
    authorized.chmod(0o600)
    port = free_port()
    config = base_dir / "sshd_config"
    config.write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {base_dir}/sshd.pid
AuthorizedKeysFile {authorized}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
AcceptEnv GIT_PROTOCOL
LogLevel ERROR
"""
    )
    with open(base_dir / "sshd.log", "wb") as log_file:
        process = spawned(
            subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                process_group=0,
            )
        )
    server = SshServer(
        port=port,
        user=getpass.getuser(),
        identity=user_key.read_text(),
        known_hosts=f"[127.0.0.1]:{port} {host_key.with_suffix('.pub').read_text().strip()}\n",
        _process=process,
    )
    try:
        wait_for_port(port, process, base_dir / "sshd.log", "sshd")
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def serve(base_dir: Path | None = None) -> Iterator[SshServer]:
    """`with serve() as server:` starts sshd and always stops it."""
    with contextlib.ExitStack() as stack:
        if base_dir is None:
            base_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sshd-")))
        server = start(base_dir)
        stack.callback(server.stop)
        yield server
