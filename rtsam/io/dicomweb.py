"""DICOMweb (QIDO-RS / WADO-RS through dicomweb-client): fetch a study from a URL, with a
timeout, retries and one clear ``PACSError`` per failure."""

from __future__ import annotations

from pathlib import Path

from ..errors import PACSError
from .pacs import RETRIES, TIMEOUT_S


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def fetch_dicomweb(url: str, study_uid: str, out: str | Path, timeout: float = TIMEOUT_S,
                   retries: int = RETRIES) -> list[Path]:
    """Every instance of a study from a DICOMweb root URL into ``out`` (``<SOPInstanceUID>.dcm``)."""
    client = _client(url, timeout, retries)
    if not _call(client.search_for_studies, url, timeout, search_filters={"StudyInstanceUID": study_uid}):
        raise PACSError(f"study {study_uid} not found on {url}")
    datasets = _call(client.retrieve_study, url, timeout, study_uid)
    if not datasets:
        raise PACSError(f"study {study_uid} on {url} has no instances")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for ds in datasets:
        path = out / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        written.append(path)
    return written


def _client(url: str, timeout: float, retries: int):
    import requests
    from dicomweb_client.api import DICOMwebClient
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    class TimeoutAdapter(HTTPAdapter):  # requests has no session-wide timeout
        def send(self, request, **kwargs):
            kwargs["timeout"] = timeout
            return super().send(request, **kwargs)

    session = requests.Session()
    adapter = TimeoutAdapter(max_retries=Retry(total=retries, connect=retries, read=retries, backoff_factor=0.5,
                                               status_forcelist=(502, 503, 504), allowed_methods=("GET",)))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return DICOMwebClient(url=url.rstrip("/"), session=session)


def _call(method, url: str, timeout: float, *args, **kwargs):
    import requests

    try:
        return method(*args, **kwargs)
    except requests.HTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        if status == 404:
            raise PACSError(f"not found on {url} (HTTP 404): {error.request.url if error.request else ''}") from None
        raise PACSError(f"{url} answered HTTP {status}") from None
    except requests.exceptions.RetryError as error:
        raise PACSError(f"{url} kept failing ({error})") from None
    except requests.Timeout:
        raise PACSError(f"{url} did not answer within {timeout:g} s") from None
    except requests.ConnectionError as error:
        raise PACSError(f"cannot connect to {url}: {_root_cause(error)}") from None


def _root_cause(error: Exception) -> str:
    while error.__context__ is not None or error.__cause__ is not None:
        error = error.__cause__ or error.__context__
    return str(error).split(": ", 1)[-1] or type(error).__name__
