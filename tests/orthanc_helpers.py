"""A real Orthanc PACS for the tests: its own process on loopback ports, a temporary storage
folder and a test configuration (AE title, our SCU as a known modality, DICOMweb plugin)."""

import json
import os
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dicom_tools import require_tool

AET, SCU_AET = "RTSAMTESTPACS", "RTSAM"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


@dataclass
class Orthanc:
    dicom_port: int
    http_port: int
    log: Path

    @property
    def node(self) -> str:
        return f"{AET}@127.0.0.1:{self.dicom_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.http}/dicom-web"

    def get(self, path: str):
        with urllib.request.urlopen(f"{self.http}{path}", timeout=10) as response:
            return json.loads(response.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(folder: Path, dicom_port: int, http_port: int) -> dict:
    return {
        "Name": "rtsam-test", "StorageDirectory": str(folder / "storage"), "IndexDirectory": str(folder / "index"),
        "DicomAet": AET, "DicomPort": dicom_port, "HttpPort": http_port, "DicomCheckCalledAet": True,
        "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "SaveJobs": False,
        "DicomModalities": {"rtsam": [SCU_AET, "127.0.0.1", free_port()]},
        "DicomAlwaysAllowEcho": False, "DicomAlwaysAllowStore": False, "DicomAlwaysAllowFind": False,
        "DicomAlwaysAllowGet": False, "DicomAlwaysAllowMove": False,
        "DicomScpTimeout": 30, "StableAge": 1, "ConcurrentJobs": 1, "HttpThreadsCount": 4, "DicomThreadsCount": 2,
        "Plugins": [str(DICOMWEB_PLUGIN)] if DICOMWEB_PLUGIN.exists() else [],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }


def bypass_proxies_for_loopback() -> None:
    """HTTP clients (urllib, requests) send even 127.0.0.1 through an http_proxy unless no_proxy says not to."""
    for name in ("no_proxy", "NO_PROXY"):
        hosts = [h for h in os.environ.get(name, "").split(",") if h]
        os.environ[name] = ",".join(dict.fromkeys(hosts + ["127.0.0.1", "localhost"]))


@contextmanager
def running_orthanc(folder: Path):
    """Start Orthanc with a fresh configuration in ``folder``; stop it afterwards."""
    binary = require_tool("Orthanc")
    bypass_proxies_for_loopback()
    folder.mkdir(parents=True, exist_ok=True)
    dicom_port, http_port = free_port(), free_port()
    (folder / "orthanc.json").write_text(json.dumps(config(folder, dicom_port, http_port)))
    log = folder / "orthanc.log"
    with open(log, "w") as out:
        process = subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=out, stderr=subprocess.STDOUT)
    server = Orthanc(dicom_port, http_port, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                server.get("/system")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Orthanc did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
