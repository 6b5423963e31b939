"""Pushing a run to the Hugging Face Hub with ``huggingface_hub``: the check before training, the upload, and the
trainer's hook (``hub.push_to_hub``, ``hub.push_checkpoints``, ``hub.private``).

- :func:`preflight` runs before any model loads: a token (``HF_TOKEN`` or the ``hf auth login`` store, through
  ``huggingface_hub.get_token``) and one ``whoami`` request with a short timeout to ``HF_ENDPOINT`` (default
  huggingface.co). No token, a rejected or read-only token, ``HF_HUB_OFFLINE`` or an unreachable Hub each give one
  line (:class:`HubUnavailable`, exit code 5).
- :func:`push_run` builds the push folder (``integrations/hub_card.py``), creates the repository (``create_repo``,
  ``private``, existing ones are kept as they are) and uploads it (``upload_folder``). A failure raises
  :class:`HubPushFailed`, whose message says where the run is and the ``ltx-trainer push`` command that retries it:
  nothing in the run directory is touched by a failed push.
- :class:`Publisher` is what the trainer holds: made at setup (the preflight), told about each saved checkpoint
  (uploaded in the background with ``hub.push_checkpoints``; a failure there warns and training goes on), and
  finished after the report (the push).
"""

from __future__ import annotations

import importlib
import os
import shutil
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from ltx_trainer import logger
from ltx_trainer.config import HubConfig
from ltx_trainer.errors import EnvironmentProblem

DEFAULT_ENDPOINT = "https://huggingface.co"
PREFLIGHT_TIMEOUT_S = 10.0
STAGING = ".hub-staging"  # checkpoint files waiting for their background upload (hard links), under the run dir


class HubUnavailable(EnvironmentProblem):
    """No usable token, or the Hub can't be reached: found before anything else runs (exit code 5)."""


class HubPushFailed(EnvironmentProblem):
    """The upload failed; the run directory is intact and the message names the command that retries (exit code 5)."""


@dataclass
class PushResult:
    """A finished push: the repository URL, the commit URL and the files of the folder."""

    repo_url: str
    commit_url: str
    folder: Path
    files: list[str]


def endpoint() -> str:
    """The Hub to talk to: ``HF_ENDPOINT`` at call time (a stand-in in tests, a mirror), else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _transport_error(session: object) -> type[Exception]:
    """The HTTP transport's base error (huggingface_hub 2.x talks through httpx2, 1.x through httpx)."""
    return importlib.import_module(type(session).__module__.split(".")[0]).HTTPError


def preflight(what: str = "hub.push_to_hub", timeout: float = PREFLIGHT_TIMEOUT_S) -> str:
    """Check that a push can work: a token the Hub accepts, with write access. Returns the account name.

    Args:
        what: the setting or command named in the messages (``hub.push_to_hub``, ``push``).
        timeout: seconds to wait for the Hub.

    Raises:
        HubUnavailable: no token, offline mode, the Hub unreachable, the token rejected or read-only.
    """
    from huggingface_hub import get_token
    from huggingface_hub.utils import build_hf_headers, get_session

    if _offline():
        raise HubUnavailable(f"{what}: HF_HUB_OFFLINE is set, so nothing can be pushed; unset it")
    token = get_token()
    if not token:
        raise HubUnavailable(f"{what}: no Hugging Face token (set HF_TOKEN or run `hf auth login`)")
    url = f"{endpoint()}/api/whoami-v2"
    session = get_session()
    try:
        response = session.get(url, headers=build_hf_headers(token=token), timeout=timeout)
    except _transport_error(session) as e:
        raise HubUnavailable(
            f"{what}: the Hugging Face Hub at {endpoint()} is unreachable ({type(e).__name__}: {e}); check the "
            "network (or HF_ENDPOINT) and retry"
        ) from None
    if response.status_code == 401:
        raise HubUnavailable(
            f"{what}: the Hub at {endpoint()} rejected the token (invalid or expired); set HF_TOKEN to a valid "
            "write token or run `hf auth login`"
        )
    if response.status_code != 200:
        raise HubUnavailable(
            f"{what}: the Hugging Face Hub at {endpoint()} answered {response.status_code} to {url}; retry later"
        )
    try:
        account = response.json()
    except ValueError:
        raise HubUnavailable(f"{what}: {endpoint()} is not a Hugging Face Hub ({url} did not answer JSON)") from None
    role = ((account.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise HubUnavailable(f"{what}: the token is read-only; make a write token (hf.co/settings/tokens)")
    return str(account.get("name") or "?")


def _api():
    from huggingface_hub import HfApi, get_token

    return HfApi(endpoint=endpoint(), token=get_token())


def retry_command(run_dir: Path, repo_id: str, private: bool, include_checkpoints: bool) -> str:
    flags = (" --private" if private else "") + (" --include-checkpoints" if include_checkpoints else "")
    return f"ltx-trainer push {run_dir} {repo_id}{flags}"


def upload(folder: Path, repo_id: str, private: bool, message: str) -> tuple[str, str]:
    """Create the repository if needed and upload ``folder`` to it; returns (repo URL, commit URL)."""
    from ltx_trainer.integrations.hub_card import MARKER

    api = _api()
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id, folder_path=folder, commit_message=message, ignore_patterns=[MARKER, f"**/{MARKER}"]
    )
    return str(repo_url), str(commit.commit_url)


def push_run(
    run_dir: str | Path,
    repo_id: str,
    private: bool = False,
    include_checkpoints: bool = False,
    dry_run: bool = False,
    out: str | Path | None = None,
) -> PushResult:
    """Build the push folder of a run and upload it (not with ``dry_run``).

    Raises:
        UsageError: not a run directory, or no weights yet (``hub_card.read_run``).
        HubPushFailed: the upload failed (the message says how to retry).
    """
    from ltx_trainer.integrations.hub_card import build_push_folder, read_run

    facts = read_run(run_dir)
    folder = build_push_folder(facts, repo_id, out, include_checkpoints)
    if dry_run:
        return PushResult("", "", folder.path, folder.files)
    from huggingface_hub.utils import get_session

    message = f"ltx-trainer: {facts.kind} weights at step {facts.step}"
    try:
        repo_url, commit_url = upload(folder.path, repo_id, private, message)
    except (_transport_error(get_session()), OSError, ValueError) as e:
        raise HubPushFailed(
            f"the push to {repo_id} failed ({type(e).__name__}: {' '.join(str(e).split())}); the run is intact in "
            f"{facts.run_dir} (weights: {facts.weights[0].name}); retry with "
            f"`{retry_command(facts.run_dir, repo_id, private, include_checkpoints)}`"
        ) from e
    return PushResult(repo_url, commit_url, folder.path, folder.files)


class Publisher:
    """The trainer's side of ``hub:``: preflight at setup, checkpoints as they are saved, the push at the end."""

    def __init__(self, hub: HubConfig, output_dir: Path, total_steps: int):
        self.hub = hub
        self.repo_id = str(hub.hub_model_id)
        self.output_dir = Path(output_dir)
        self.total_steps = total_steps
        self.pending: list[tuple[int, Future]] = []
        self._api = None

    @classmethod
    def for_training(cls, hub: HubConfig, output_dir: Path, total_steps: int) -> Publisher | None:
        """None without ``hub.push_to_hub``; else checks the token and the Hub now, before any model loads.

        Raises:
            HubUnavailable: see :func:`preflight`.
        """
        if not hub.push_to_hub:
            return None
        account = preflight("hub.push_to_hub")
        logger.info("hub.push_to_hub: the run goes to %s (as %s) when training ends", hub.hub_model_id, account)
        return cls(hub, output_dir, total_steps)

    def checkpoint_saved(self, step: int, files: list[Path]) -> None:
        """``hub.push_checkpoints``: upload a checkpoint's weights to ``checkpoints/`` in the background (the final
        step goes up with the card instead). The files are hard-linked first, so pruning can't pull them away."""
        if not self.hub.push_checkpoints or step >= self.total_steps:
            return
        from huggingface_hub import CommitOperationAdd
        from huggingface_hub.utils import get_session

        staged = self.output_dir / STAGING / f"step_{step:05d}"
        staged.mkdir(parents=True, exist_ok=True)
        operations = []
        for path in files:
            target = staged / path.name
            if not target.exists():
                try:
                    os.link(path, target)
                except OSError:
                    shutil.copy2(path, target)
            operations.append(CommitOperationAdd(path_in_repo=f"checkpoints/{path.name}", path_or_fileobj=str(target)))
        try:
            if self._api is None:
                self._api = _api()
                self._api.create_repo(self.repo_id, private=self.hub.private, exist_ok=True)
            message = f"ltx-trainer: checkpoint step {step}"
            future = self._api.create_commit(self.repo_id, operations, commit_message=message, run_as_future=True)
        except (_transport_error(get_session()), OSError, ValueError) as e:
            self._api = None
            logger.warning("hub.push_checkpoints: step %d not uploaded (%s); training goes on", step, e)
            shutil.rmtree(staged, ignore_errors=True)
            return
        future.add_done_callback(lambda _: shutil.rmtree(staged, ignore_errors=True))
        self.pending.append((step, future))

    def _wait_for_checkpoints(self) -> None:
        for step, future in self.pending:
            error = future.exception()
            if error is not None:
                logger.warning("hub.push_checkpoints: step %d was not uploaded (%s)", step, error)
            else:
                logger.info("hub.push_checkpoints: step %d uploaded (%s)", step, future.result().commit_url)
        self.pending.clear()
        shutil.rmtree(self.output_dir / STAGING, ignore_errors=True)

    def finish(self) -> PushResult:
        """After training: wait for checkpoint uploads, then push the final weights with the card.

        Raises:
            HubPushFailed: the run stays as it is; the message names the retry command.
        """
        self._wait_for_checkpoints()
        hub = self.hub
        result = push_run(self.output_dir, self.repo_id, hub.private, include_checkpoints=hub.push_checkpoints)
        logger.info("pushed to %s (%s)", result.repo_url, result.commit_url)
        return result
